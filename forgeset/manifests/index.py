"""Assemble manifest.parquet, rejects.parquet and index.json from finished shards (index last).

index.json vouches for every file of the corpus: the sha256 and size of the manifest, the rejects,
the resolved spec and each shard, plus `index_sha256`, the sha256 of its own canonical content
(every other field, keys sorted, compact separators), so an edit of any field is detected.

Finalize streams: the per-shard row files are read a few at a time (threads: parquet decoding
releases the GIL) and appended to manifest.parquet in row groups, never one table of the whole
corpus; the counts are reduced shard by shard (Arrow group-by, merged), the leakage figures from
four columns, the bias probe from a bounded sample. Memory: the leakage columns (about 110 bytes
a row) plus one row group, instead of a Python dict per row.
"""

from __future__ import annotations

import hashlib
import json
import platform
import zlib
from collections import Counter, deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from forgeset.core.faults import checkpoint
from forgeset.manifests.bias_probe import LEAKAGE_COLUMNS, PROBE_COLUMNS, bias_probe, leakage
from forgeset.manifests.layout import INDEX_NAME, MANIFEST_NAME, REJECTS_NAME, RESOLVED_SPEC_NAME, Layout
from forgeset.manifests.schema import FORMAT_VERSION, MANIFEST_SCHEMA, REJECTS_SCHEMA
from forgeset.manifests.shard_reader import file_sha256
from forgeset.manifests.storage import Storage

if TYPE_CHECKING:
    from forgeset.manifests.shard_writer import ShardMarker

# The files besides the shards that index.json vouches for.
VOUCHED_FILES = (MANIFEST_NAME, REJECTS_NAME, RESOLVED_SPEC_NAME)
SELF_HASH_FIELD = "index_sha256"


def index_content_sha256(index: dict[str, Any]) -> str:
    """sha256 of the index's canonical JSON without its own hash field."""
    content = {key: value for key, value in index.items() if key != SELF_HASH_FIELD}
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(canonical.encode("ascii")).hexdigest()


def file_entry(path: Path) -> dict[str, Any]:
    """What the index records of a file: its size and sha256."""
    return {"bytes": path.stat().st_size, "sha256": file_sha256(path)}


def stored_file_entry(storage: Storage, name: str) -> dict[str, Any]:
    """`file_entry` of a file already in the corpus, on any storage (streamed, never downloaded whole)."""
    if storage.local is not None:
        return file_entry(storage.local_path(name))
    return {"bytes": storage.size(name), "sha256": storage.sha256(name)}


_LIBRARIES = (
    "forgeset",
    "torch",
    "diffusers",
    "transformers",
    "safetensors",
    "pillow",
    "numpy",
    "webdataset",
    "pyarrow",
    "ray",
    "scikit-image",
)


def library_versions() -> dict[str, str]:
    """Versions that decide the output bytes (zlib decides PNG bytes), without importing torch."""
    versions = {"python": platform.python_version(), "zlib": zlib.ZLIB_RUNTIME_VERSION}
    for name in _LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


COUNT_COLUMNS = ("split", "label", "kind", "generator")
# The manifest columns ManifestTally reads.
TALLY_COLUMNS = tuple(dict.fromkeys((*COUNT_COLUMNS, *LEAKAGE_COLUMNS, *PROBE_COLUMNS)))
# The bias probe is fitted on at most this many rows: the same fit at any corpus size, a few seconds.
PROBE_SAMPLE_ROWS = 100_000
# Rows per manifest row group: bounded memory while writing, and readers can stream it.
ROW_GROUP_ROWS = 65_536
# Row files read ahead of the writer during finalize (object storage: each read waits on a request).
READ_AHEAD = 8
READ_AHEAD_REMOTE = 32
_REAL_GENERATOR = "(real)"
_POSITION = "__position"


def _tally(counts: Counter[tuple[Any, ...]], split: str | None) -> dict[str, Any]:
    """Total, label, kind and generator counts of one split (or all) from merged group counts."""
    label: Counter[str] = Counter()
    kind: Counter[str] = Counter()
    generator: Counter[str] = Counter()
    for (row_split, row_label, row_kind, row_generator), n in counts.items():
        if split is None or row_split == split:
            label[row_label] += n
            kind[row_kind] += n
            generator[row_generator or _REAL_GENERATOR] += n
    total = sum(label.values())
    return {
        "total": total,
        "label": dict(sorted(label.items())),
        "kind": dict(sorted(kind.items())),
        "generator": dict(sorted(generator.items())),
    }


class ManifestTally:
    """Reduce a manifest fed in tables (shard by shard, or row group by row group) to its index figures.

    Counts are merged Arrow group-bys; the leakage figures need every row's key, split, parent
    and image hash (kept as columns); the bias probe is fitted on a sample of at most
    `probe_rows` rows: those with the smallest (image sha256, key), which depends on the rows
    and not on the order they arrive in, fitted in manifest order. Up to `probe_rows` rows the
    probe sees every row.
    """

    def __init__(self, probe_rows: int = PROBE_SAMPLE_ROWS) -> None:
        self.probe_rows = probe_rows
        self.samples = 0
        self._counts: Counter[tuple[Any, ...]] = Counter()
        self._lineage: list[pa.Table] = []
        self._probe: list[pa.Table] = []
        self._probe_held = 0
        self._pending: list[pa.Table] = []
        self._pending_rows = 0
        self._reduced = 0

    def add(self, table: pa.Table) -> None:
        """Fold in the next rows (manifest order), which hold at least TALLY_COLUMNS."""
        self._pending.append(table.select(list(TALLY_COLUMNS)))
        self._pending_rows += table.num_rows
        self.samples += table.num_rows
        if self._pending_rows >= ROW_GROUP_ROWS:
            self._reduce()

    def _reduce(self) -> None:
        """Reduce the queued rows; one group-by per ROW_GROUP_ROWS rows, not per (small) shard."""
        if not self._pending:
            return
        table = pa.concat_tables(self._pending)
        self._pending, self._pending_rows = [], 0
        grouped = table.group_by(list(COUNT_COLUMNS)).aggregate([([], "count_all")])
        for row in grouped.to_pylist():
            self._counts[tuple(row[name] for name in COUNT_COLUMNS)] += row["count_all"]
        # Copied into one block per reduce: small per-shard buffers kept alive would pin freed memory.
        self._lineage.append(table.select(list(LEAKAGE_COLUMNS)).combine_chunks())
        position = pa.array(range(self._reduced, self._reduced + table.num_rows), pa.int64())
        probe = table.select(list(dict.fromkeys((*PROBE_COLUMNS, "sha256", "key"))))
        self._probe.append(probe.append_column(_POSITION, position))
        self._probe_held += table.num_rows
        self._reduced += table.num_rows
        if self._probe_held > 2 * self.probe_rows:
            self._shrink_probe()

    def _shrink_probe(self) -> None:
        held = pa.concat_tables(self._probe)
        if held.num_rows > self.probe_rows:
            held = held.sort_by([("sha256", "ascending"), ("key", "ascending")]).slice(0, self.probe_rows)
        self._probe, self._probe_held = [held], held.num_rows

    def counts(self) -> dict[str, Any]:
        """Sample counts overall and per split, by label, kind and generator (index.json `counts`)."""
        self._reduce()
        splits = sorted({key[0] for key in self._counts})
        return {"all": _tally(self._counts, None), "splits": {s: _tally(self._counts, s) for s in splits}}

    def lineage(self) -> pa.Table:
        """Key, split, parent and image hash of every row seen."""
        self._reduce()
        if not self._lineage:
            return MANIFEST_SCHEMA.empty_table().select(list(LEAKAGE_COLUMNS))
        return pa.concat_tables(self._lineage)

    def leakage(self) -> dict[str, int]:
        """index.json `leakage`."""
        return leakage(self.lineage())

    def orphan(self) -> tuple[str, str] | None:
        """The first (key, parent_key), manifest order, whose parent is not a key of the manifest; or None."""
        lineage = self.lineage()
        keys = lineage["key"].combine_chunks()
        missing = pc.and_(pc.is_valid(lineage["parent_key"]), pc.invert(pc.is_in(lineage["parent_key"], keys)))
        orphans = lineage.filter(pc.fill_null(missing, False))
        if orphans.num_rows == 0:
            return None
        return str(orphans["key"][0].as_py()), str(orphans["parent_key"][0].as_py())

    def bias_probe(self) -> dict[str, Any]:
        """index.json `bias_probe`: fitted on the sample, in manifest order; says so when sampled."""
        self._reduce()
        if not self._probe:
            return bias_probe(MANIFEST_SCHEMA.empty_table().select(list(PROBE_COLUMNS)))
        self._shrink_probe()
        sample = self._probe[0].sort_by(_POSITION)
        probe = bias_probe(sample)
        if self.samples > sample.num_rows:
            probe["sample"] = {"rows": sample.num_rows, "of": self.samples}
        return probe


class _ParquetAppender:
    """Append tables to one parquet file in row groups of about ROW_GROUP_ROWS rows."""

    def __init__(self, path: Path, schema: pa.Schema) -> None:
        self.schema = schema
        self.rows = 0
        self._pending: list[pa.Table] = []
        self._pending_rows = 0
        self._writer = pq.ParquetWriter(path, schema)

    def write(self, table: pa.Table) -> None:
        """Queue `table`'s rows; full row groups are written out."""
        self._pending.append(table)
        self._pending_rows += table.num_rows
        self.rows += table.num_rows
        if self._pending_rows >= ROW_GROUP_ROWS:
            self._flush()

    def _flush(self) -> None:
        if self._pending_rows:
            self._writer.write_table(pa.concat_tables(self._pending), row_group_size=max(self._pending_rows, 1))
        self._pending, self._pending_rows = [], 0

    def close(self) -> None:
        """Write what is queued and the footer."""
        self._flush()
        self._writer.close()


def _read_rows(storage: Storage, name: str, schema: pa.Schema) -> pa.Table:
    """One per-shard row file, in `schema` (ParquetFile: no dataset discovery per small file)."""
    with storage.open(name) as handle:
        table = pq.ParquetFile(handle).read()
    if not table.schema.equals(schema):
        table = table.select(schema.names).cast(schema)
    return table


def _read_state(storage: Storage, state: str) -> tuple[ShardMarker, pa.Table, pa.Table]:
    """A shard's marker, rows and rejects, from its state stem relative to OUT."""
    # Imported here: shard_writer imports webdataset (and torch), which readers of a corpus never need.
    from forgeset.manifests.shard_writer import ShardMarker

    stem = Path(state)
    marker_name = Layout.marker_file(stem).as_posix()
    try:
        marker = ShardMarker(**json.loads(storage.read_bytes(marker_name)))
    except FileNotFoundError:
        raise FileNotFoundError(f"{storage.url_of(marker_name)} is missing: shard not finished") from None
    rows = _read_rows(storage, Layout.rows_file(stem).as_posix(), MANIFEST_SCHEMA)
    return marker, rows, _read_rows(storage, Layout.rejects_file(stem).as_posix(), REJECTS_SCHEMA)


def _read_states(storage: Storage, states: Iterable[str]) -> Iterator[tuple[ShardMarker, pa.Table, pa.Table]]:
    """Every shard's marker, rows and rejects in plan order, a few files read ahead (more on object storage)."""
    ahead = READ_AHEAD if storage.is_local else READ_AHEAD_REMOTE
    with ThreadPoolExecutor(max_workers=4 if storage.is_local else 16) as pool:
        pending: deque[Future[tuple[ShardMarker, pa.Table, pa.Table]]] = deque()
        for state in states:
            pending.append(pool.submit(_read_state, storage, state))
            if len(pending) >= ahead:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def _state_name(storage: Storage, state: Path | str) -> str:
    """A shard's state stem as a name relative to OUT (callers pass paths under a local OUT, or names)."""
    path = Path(state)
    if storage.local is not None:
        for root in (storage.local, storage.local.absolute()):
            if path.is_relative_to(root):
                return path.relative_to(root).as_posix()
    return path.as_posix()


def finalize(
    out_dir: Path | str | Storage,
    spec_name: str,
    spec_sha256: str,
    image_policy: dict[str, Any],
    members: list[str],
    shard_states: list[tuple[str, Path]] | list[tuple[str, str]],
    derived_from: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Append per-shard rows in plan order to the manifest, reduce them, and publish the index last.

    `out_dir` is a folder, a URL or a Storage; `shard_states` name each shard's state stem (a path
    under a local OUT, or a name relative to OUT). The manifest and rejects are written to local
    scratch files (beside their final names for a local corpus), hashed there and published
    atomically; the index is published last.
    """
    storage = Storage.of(out_dir)
    shards = []
    tally = ManifestTally()
    manifest_file = storage.scratch_file(MANIFEST_NAME)
    rejects_file = storage.scratch_file(REJECTS_NAME)
    try:
        manifest = _ParquetAppender(manifest_file, MANIFEST_SCHEMA)
        rejects = _ParquetAppender(rejects_file, REJECTS_SCHEMA)
        try:
            splits = [split for split, _ in shard_states]
            states = (_state_name(storage, state) for _, state in shard_states)
            for split, (marker, rows, shard_rejects) in zip(splits, _read_states(storage, states), strict=True):
                shards.append(
                    {
                        "path": marker.path,
                        "split": split,
                        "count": marker.count,
                        "bytes": marker.bytes,
                        "sha256": marker.sha256,
                    }
                )
                manifest.write(rows)
                rejects.write(shard_rejects)
                tally.add(rows)
        finally:
            manifest.close()
            rejects.close()
        files = {MANIFEST_NAME: file_entry(manifest_file), REJECTS_NAME: file_entry(rejects_file)}
        storage.publish_file(manifest_file, MANIFEST_NAME)
        storage.publish_file(rejects_file, REJECTS_NAME)
    finally:
        manifest_file.unlink(missing_ok=True)
        rejects_file.unlink(missing_ok=True)
    checkpoint("manifest-written")
    files[RESOLVED_SPEC_NAME] = stored_file_entry(storage, RESOLVED_SPEC_NAME)
    index = {
        "format_version": FORMAT_VERSION,
        "name": spec_name,
        "spec_sha256": spec_sha256,
        "image_policy": image_policy,
        "members": members,
        "libraries": library_versions(),
        "samples": tally.samples,
        "rejects": rejects.rows,
        "counts": tally.counts(),
        "leakage": tally.leakage(),
        "bias_probe": tally.bias_probe(),
        "shards": shards,
        "files": {name: files[name] for name in VOUCHED_FILES},
    }
    if derived_from:
        index["derived_from"] = derived_from
    index[SELF_HASH_FIELD] = index_content_sha256(index)
    storage.publish_bytes((json.dumps(index, indent=2, sort_keys=False) + "\n").encode("utf-8"), INDEX_NAME)
    checkpoint("index-written")
    return index
