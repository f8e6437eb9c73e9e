"""A real source listed once into a table (ref, caption, license), read back by row number.

Listing a large source (a folder walk, a Hub dataset) is the slow part of planning, and a plan
needs only the item count and, for caption-paired prompts, the captions. The listing is kept as
an Arrow table; given a state folder it is written there as parquet in small row groups, so a
resume reuses it without listing again and a shard reads only the row groups of its items.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from forgeset.builders.sources.base import RealItem, RealSource

ROW_GROUP_ROWS = 2048
"""Rows per parquet row group: a shard of scattered items decodes at most this many per item."""
_IDENTITY_KEY = b"forgeset.source"
_SCHEMA = pa.schema([("ref", pa.string()), ("caption", pa.string()), ("license", pa.string())])


def _identity(source: RealSource) -> bytes:
    """What the listing depends on: the source's params and the folder relative paths resolve against."""
    params = source.params.model_dump(mode="json")
    return json.dumps({"params": params, "base_dir": str(source.base_dir)}, sort_keys=True).encode()


class SourceIndex:
    """The listed items of one real source, in listing order (row number = item index)."""

    def __init__(self, table: pa.Table | None = None, path: Path | None = None) -> None:
        if (table is None) == (path is None):
            raise ValueError("a source index is either a table in memory or a parquet file")
        self._table = table
        self._path = path
        self._file: pq.ParquetFile | None = None
        self._starts: np.ndarray | None = None
        self._rows = table.num_rows if table is not None else pq.ParquetFile(path).metadata.num_rows

    @classmethod
    def open(cls, source: RealSource, path: Path | None) -> SourceIndex:
        """List `source`, or reuse the listing at `path` when it was made from the same params.

        With `path` None the listing stays in memory and nothing is written.
        """
        identity = _identity(source)
        if path is not None and path.exists():
            try:
                metadata = pq.read_metadata(path).metadata or {}
            except (OSError, pa.ArrowException):  # a torn or foreign file: list again
                metadata = {}
            if metadata.get(_IDENTITY_KEY) == identity:
                return cls(path=path)
        items = source.items()
        table = pa.table(
            {
                "ref": [item.ref for item in items],
                "caption": [item.caption for item in items],
                "license": [item.license for item in items],
            },
            schema=_SCHEMA,
        )
        del items
        if path is None:
            return cls(table=table)
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.tmp")
        pq.write_table(
            table.replace_schema_metadata({_IDENTITY_KEY: identity}), temporary, row_group_size=ROW_GROUP_ROWS
        )
        os.replace(temporary, path)
        return cls(path=path)

    def __len__(self) -> int:
        return self._rows

    def captions(self) -> list[str | None]:
        """Every item's caption, in order (for caption-paired prompts)."""
        table = self._table if self._table is not None else pq.read_table(self._path, columns=["caption"])
        return table.column("caption").to_pylist()

    def _rows_table(self, rows: np.ndarray) -> pa.Table:
        """The rows `rows` (sorted or not), read from only the row groups that hold them."""
        if self._table is not None:
            return self._table.take(pa.array(rows, pa.int64()))
        if self._file is None:
            self._file = pq.ParquetFile(self._path)
            sizes = [self._file.metadata.row_group(i).num_rows for i in range(self._file.num_row_groups)]
            self._starts = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        assert self._starts is not None
        groups = np.searchsorted(self._starts, rows, side="right") - 1
        needed = np.unique(groups)
        table = self._file.read_row_groups(needed.tolist())
        # position of each row inside the concatenation of the needed row groups
        sizes = self._starts[needed + 1] - self._starts[needed]
        base = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        positions = base[np.searchsorted(needed, groups)] + (rows - self._starts[groups])
        return table.take(pa.array(positions, pa.int64()))

    def items(self, rows: np.ndarray) -> list[RealItem]:
        """The items at row numbers `rows`, in that order."""
        if len(rows) == 0:
            return []
        table = self._rows_table(np.asarray(rows, dtype=np.int64))
        columns = [table.column(name).to_pylist() for name in ("ref", "caption", "license")]
        return [
            RealItem(ref=ref, caption=caption, license=license) for ref, caption, license in zip(*columns, strict=True)
        ]

    def __getstate__(self) -> dict[str, object]:
        state = dict(self.__dict__)
        state["_file"] = None  # reopened on first read
        return state
