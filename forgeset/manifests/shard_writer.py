"""Write one shard as a byte-reproducible WebDataset tar: temp name first, then an atomic rename."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import webdataset as wds

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


class ShardWriter:
    """Writes samples (dicts of member extension -> bytes, plus `__key__`) in key order."""

    def __init__(self, out_dir: Path, relative_path: str) -> None:
        self.out_dir = out_dir
        self.relative_path = relative_path

    def write(self, samples: list[dict[str, bytes | str]]) -> ShardStats:
        """Write all samples to PATH.PID.tmp, fsync, rename to PATH; return count, size and hash."""
        final = self.out_dir / self.relative_path
        final.parent.mkdir(parents=True, exist_ok=True)
        # Unique per process: a worker orphaned by a killed build may still be finishing this shard.
        temporary = final.with_name(f"{final.name}.{os.getpid()}{TMP_SUFFIX}")
        ordered = sorted(samples, key=lambda sample: sample["__key__"])
        with open(temporary, "wb") as handle:
            writer = wds.TarWriter(
                handle, user=TAR_OWNER, group=TAR_OWNER, mode=TAR_MODE, mtime=TAR_MTIME, encoder=False
            )
            for sample in ordered:
                writer.write(sample)
            writer.close()
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, final)
        return ShardStats(self.relative_path, len(ordered), final.stat().st_size, file_sha256(final))
