"""A real source listed once into a table (ref, caption, license), read back by row number.

Listing a large source (a folder walk, a Hub dataset) is the slow part of planning, and a plan
needs only the item count and, for caption-paired prompts, the captions. The listing is kept as
an Arrow table; given a state folder it is written there as an uncompressed Arrow IPC file, so a
resume reuses it without listing again, and a shard's scattered items are read by memory-mapped
random access (`take`), touching only their own rows, not a block of neighbours per item.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pyarrow as pa

from forgeset.builders.sources.base import RealItem, RealSource

_IDENTITY_KEY = b"forgeset.source"
_SCHEMA = pa.schema([("ref", pa.string()), ("caption", pa.string()), ("license", pa.string())])


def _identity(source: RealSource) -> bytes:
    """What the listing depends on: the source's params and the folder relative paths resolve against."""
    params = source.params.model_dump(mode="json")
    return json.dumps({"params": params, "base_dir": str(source.base_dir)}, sort_keys=True).encode()


def _read_listing(path: Path) -> pa.Table | None:
    """The listing at `path`, memory-mapped (zero copy), or None when it is torn or not a listing."""
    try:
        return pa.ipc.open_file(pa.memory_map(str(path))).read_all()
    except (OSError, pa.ArrowException):
        return None


class SourceIndex:
    """The listed items of one real source, in listing order (row number = item index)."""

    def __init__(self, table: pa.Table | None = None, path: Path | None = None) -> None:
        if (table is None) == (path is None):
            raise ValueError("a source index is either a table in memory or an Arrow file")
        self._path = path
        self._table: pa.Table | None = table if table is not None else _read_listing(path)  # type: ignore[arg-type]
        if self._table is None:
            raise ValueError(f"{path} is not a readable source listing")

    @classmethod
    def open(cls, source: RealSource, path: Path | None) -> SourceIndex:
        """List `source`, or reuse the listing at `path` when it was made from the same params.

        With `path` None the listing stays in memory and nothing is written.
        """
        identity = _identity(source)
        if path is not None and path.exists():
            listed = _read_listing(path)  # a torn or foreign file is listed again
            if listed is not None and (listed.schema.metadata or {}).get(_IDENTITY_KEY) == identity:
                return cls(table=listed)
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
        table = table.replace_schema_metadata({_IDENTITY_KEY: identity})
        with pa.OSFile(str(temporary), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
            writer.write_table(table)
        os.replace(temporary, path)
        return cls(path=path)

    def captions(self) -> list[str | None]:
        """Every item's caption, in order (for caption-paired prompts)."""
        return self._loaded().column("caption").to_pylist()

    def _loaded(self) -> pa.Table:
        if self._table is None:  # unpickled on a worker: map the file again
            self._table = _read_listing(self._path) if self._path is not None else None
            if self._table is None:
                raise ValueError(f"{self._path} is not a readable source listing")
        return self._table

    def _rows_table(self, rows: np.ndarray) -> pa.Table:
        """The rows `rows` (sorted or not), by random access into the mapped listing."""
        return self._loaded().take(pa.array(rows, pa.int64()))

    def items(self, rows: np.ndarray) -> list[RealItem]:
        """The items at row numbers `rows`, in that order."""
        if len(rows) == 0:
            return []
        table = self._rows_table(np.asarray(rows, dtype=np.int64))
        columns = [table.column(name).to_pylist() for name in ("ref", "caption", "license")]
        return [
            RealItem(ref=ref, caption=caption, license=license) for ref, caption, license in zip(*columns, strict=True)
        ]

    def __len__(self) -> int:
        return self._loaded().num_rows

    def __getstate__(self) -> dict[str, object]:
        state = dict(self.__dict__)
        if self._path is not None:
            state["_table"] = None  # a mapped file is mapped again where it is unpickled, not copied
        return state
