"""Write one shard: a byte-reproducible WebDataset tar, its manifest rows, its rejects, its done-marker.

The tar is written under a temporary name and published atomically (renamed locally, uploaded to
a temporary key and copied on object storage); the rows and rejects follow; the marker is
written last, so its presence means the shard is finished. `build` and `filter` both write
through `ShardWriter.finish`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import webdataset as wds

from forgeset.core.faults import checkpoint
from forgeset.manifests.layout import Layout, shard_path
from forgeset.manifests.schema import MANIFEST_SCHEMA, REJECTS_SCHEMA, RejectRecord, SampleRecord, records_table
from forgeset.manifests.storage import Storage, local_stamp

# Fixed tar header fields: the same samples always give the same bytes.
TAR_MTIME = 0
TAR_OWNER = "forgeset"
TAR_MODE = 0o444


@dataclass(frozen=True)
class ShardStats:
    """What the index records for a finished shard."""

    path: str
    count: int
    bytes: int
    sha256: str


def file_sha256(path: Path) -> str:
    """sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def tar_stamp(path: Path) -> str:
    """A cheap identity of a written local file ("SIZE:MTIME_NS"): resume trusts a marker whose stamp matches.

    For a corpus on object storage use `Storage.stamp` ("SIZE:ETAG"); locally the two agree.
    """
    return local_stamp(path)


@dataclass(frozen=True)
class ShardMarker:
    """The done-marker of a shard: what the index records, how many inputs were refused, the tar's stamp.

    `stamp` is empty in markers written before stamps existed; such a marker is verified by hash.
    """

    path: str
    count: int
    bytes: int
    sha256: str
    rejects: int
    stamp: str = ""


def read_marker(state: Path) -> ShardMarker | None:
    """The done-marker of the shard whose state stem is `state`, or None if it is not finished."""
    marker = Layout.marker_file(state)
    if not marker.exists():
        return None
    return ShardMarker(**json.loads(marker.read_text()))


def read_shard_marker(storage: Storage, split: str, index: int) -> ShardMarker | None:
    """The done-marker of shard `split`/`index` in a corpus on any storage, or None if it is not finished."""
    name = Layout.marker_file(_relative_state(split, index)).as_posix()
    if not storage.exists(name):
        return None
    return ShardMarker(**json.loads(storage.read_bytes(name)))


def _relative_state(split: str, index: int) -> Path:
    """A shard's state stem relative to OUT (`Layout.shard_state` under an empty root)."""
    return Layout(Path()).shard_state(split, index)


class ShardWriter:
    """Writes shard `split`/`index` of the corpus at `out_dir` (folder or URL): samples in key order, then its state.

    The tar is written to a local file (beside its final name for a local corpus, in the scratch
    folder for object storage) and published atomically; so are the rows and rejects; the marker
    is published last.
    """

    def __init__(self, out_dir: Path | str | Storage, split: str, index: int) -> None:
        self.out_dir = out_dir
        self.storage = Storage.of(out_dir)
        self.relative_path = shard_path(split, index)
        relative_state = _relative_state(split, index)
        self.state_relative = relative_state.as_posix()
        """The shard's state stem relative to OUT, as a POSIX name."""
        self.state = self.storage.local_path(self.state_relative) if self.storage.is_local else relative_state
        """The state stem as a local path (relative to OUT when the corpus is not local)."""

    def write(self, samples: list[dict[str, bytes | str]]) -> ShardStats:
        """Write all samples to a unique temporary file, fsync, publish as PATH; return count, size and hash."""
        # Unique per process: a worker orphaned by a killed build may still be finishing this shard.
        temporary = self.storage.scratch_file(self.relative_path)
        ordered = sorted(samples, key=lambda sample: sample["__key__"])
        try:
            with open(temporary, "wb") as handle:
                writer = wds.TarWriter(
                    handle, user=TAR_OWNER, group=TAR_OWNER, mode=TAR_MODE, mtime=TAR_MTIME, encoder=False
                )
                try:
                    for sample in ordered:
                        writer.write(sample)
                        checkpoint("tar-member")
                except BaseException:
                    with contextlib.suppress(Exception):  # closed now, the tar stream never flushes again later
                        writer.close()
                    raise
                writer.close()
                handle.flush()
                os.fsync(handle.fileno())
            size, sha256 = temporary.stat().st_size, file_sha256(temporary)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise
        self.storage.publish_file(temporary, self.relative_path)
        checkpoint("tar-written")
        return ShardStats(self.relative_path, len(ordered), size, sha256)

    def finish(
        self, samples: list[dict[str, Any]], records: list[SampleRecord], rejects: list[RejectRecord]
    ) -> ShardMarker:
        """Write the tar, then the rows and rejects, then the done-marker (last)."""
        stats = self.write(samples)
        state = Path(self.state_relative)
        rows = records_table(sorted(records, key=lambda r: r.key), MANIFEST_SCHEMA)
        self.storage.publish_bytes(_parquet_bytes(rows), Layout.rows_file(state).as_posix())
        self.storage.publish_bytes(
            _parquet_bytes(records_table(rejects, REJECTS_SCHEMA)), Layout.rejects_file(state).as_posix()
        )
        checkpoint("rows-written")
        stamp = self.storage.stamp(stats.path)
        marker = ShardMarker(stats.path, stats.count, stats.bytes, stats.sha256, len(rejects), stamp)
        self.storage.publish_bytes(
            json.dumps(asdict(marker), sort_keys=True).encode(), Layout.marker_file(state).as_posix()
        )
        checkpoint("marker-written")
        return marker


def _parquet_bytes(table: pa.Table) -> bytes:
    """A table as the bytes of a parquet file (the same bytes `pq.write_table` writes to a path)."""
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    return bytes(sink.getvalue().to_pybytes())
