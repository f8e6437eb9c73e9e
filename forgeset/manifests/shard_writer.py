"""Write one shard: a byte-reproducible WebDataset tar, its manifest rows, its rejects, its done-marker.

The tar is written under a temporary name and renamed; the rows and rejects follow; the marker
is written last, so its presence means the shard is finished. `build` and `filter` both write
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

import pyarrow.parquet as pq
import webdataset as wds

from forgeset.core.faults import checkpoint
from forgeset.manifests.layout import Layout, shard_path
from forgeset.manifests.schema import MANIFEST_SCHEMA, REJECTS_SCHEMA, RejectRecord, SampleRecord, records_table

# Fixed tar header fields: the same samples always give the same bytes.
TAR_MTIME = 0
TAR_OWNER = "forgeset"
TAR_MODE = 0o444
TMP_SUFFIX = ".tmp"


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
    """A cheap identity of a written file ("SIZE:MTIME_NS"): resume trusts a marker whose stamp matches."""
    info = path.stat()
    return f"{info.st_size}:{info.st_mtime_ns}"


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


class ShardWriter:
    """Writes the shard `split`/`index` of the corpus in `out_dir`: samples in key order, then its state."""

    def __init__(self, out_dir: Path, split: str, index: int) -> None:
        self.out_dir = out_dir
        self.relative_path = shard_path(split, index)
        self.state = Layout(out_dir).shard_state(split, index)

    def write(self, samples: list[dict[str, bytes | str]]) -> ShardStats:
        """Write all samples to PATH.PID.tmp, fsync, rename to PATH; return count, size and hash."""
        final = self.out_dir / self.relative_path
        final.parent.mkdir(parents=True, exist_ok=True)
        # Unique per process: a worker orphaned by a killed build may still be finishing this shard.
        temporary = final.with_name(f"{final.name}.{os.getpid()}{TMP_SUFFIX}")
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
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise
        os.replace(temporary, final)
        checkpoint("tar-written")
        return ShardStats(self.relative_path, len(ordered), final.stat().st_size, file_sha256(final))

    def finish(
        self, samples: list[dict[str, Any]], records: list[SampleRecord], rejects: list[RejectRecord]
    ) -> ShardMarker:
        """Write the tar, then the rows and rejects, then the done-marker (last)."""
        stats = self.write(samples)
        self.state.parent.mkdir(parents=True, exist_ok=True)
        rows = records_table(sorted(records, key=lambda r: r.key), MANIFEST_SCHEMA)
        pq.write_table(rows, Layout.rows_file(self.state))
        pq.write_table(records_table(rejects, REJECTS_SCHEMA), Layout.rejects_file(self.state))
        checkpoint("rows-written")
        stamp = tar_stamp(self.out_dir / stats.path)
        marker = ShardMarker(stats.path, stats.count, stats.bytes, stats.sha256, len(rejects), stamp)
        final = Layout.marker_file(self.state)
        temporary = final.with_suffix(".tmp")
        temporary.write_text(json.dumps(asdict(marker), sort_keys=True))
        temporary.replace(final)
        checkpoint("marker-written")
        return marker
