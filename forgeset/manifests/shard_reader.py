"""Read a corpus file back: tar members as (key, extension, bytes), and a file's sha256.

Imports nothing heavy (no webdataset, hence no torch): verify's worker processes start fast.
"""

from __future__ import annotations

import hashlib
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO


def read_members(path: Path | IO[bytes]) -> Iterator[tuple[str, str, bytes]]:
    """(key, extension, bytes) per member, keys split at the first dot as WebDataset does.

    `path` is a tar file or a readable binary stream (read in one pass, e.g. from object storage).
    Only regular files are expected; anything else raises tarfile.TarError naming the member.
    """
    with tarfile.open(path) if isinstance(path, Path) else tarfile.open(fileobj=path, mode="r|") as archive:
        for member in archive:
            if not member.isfile():
                raise tarfile.TarError(f"member {member.name!r} is not a regular file")
            key, _, ext = member.name.partition(".")
            file = archive.extractfile(member)
            if file is None:
                raise tarfile.TarError(f"member {member.name!r} is not a regular file")
            yield key, ext, file.read()


def read_samples(path: Path) -> dict[str, dict[str, bytes]]:
    """The shard's samples: key -> {extension: bytes}."""
    samples: dict[str, dict[str, bytes]] = {}
    for key, ext, data in read_members(path):
        samples.setdefault(key, {})[ext] = data
    return samples


def file_sha256(path: Path) -> str:
    """sha256 of a file (hashlib reads it in large blocks, without holding it in memory)."""
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()
