"""Real images from a folder, local or at a URL (s3://bucket/photos/), listed recursively in sorted order."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field

from forgeset.builders.sources.base import RealItem, RealSource, RealSourceParams, real_sources
from forgeset.core.rejection import SampleRejected
from forgeset.manifests.layout import UnsafePath
from forgeset.manifests.storage import Storage, is_url

DEFAULT_EXTENSIONS = ["jpg", "jpeg", "png", "webp", "tif", "tiff", "bmp", "gif"]
DEFAULT_MAX_BYTES = 256 * 2**20


@real_sources.register("folder")
class FolderSource(RealSource):
    """Files under `path` whose extension is allowlisted; hidden files and folders are skipped.

    A symbolic link that leads outside the folder is skipped when listing (and counted in
    `skipped_links`); a file larger than `max_bytes` is rejected before it is read. A URL `path`
    is listed and read through fsspec, with the same order as a local folder of the same files.
    """

    class Params(RealSourceParams):
        type: Literal["folder"] = "folder"
        path: str = Field(description="folder, relative to the spec file unless absolute, or a URL (s3://...)")
        recursive: bool = True
        extensions: list[str] = Field(default_factory=lambda: list(DEFAULT_EXTENSIONS))
        max_bytes: int = Field(
            DEFAULT_MAX_BYTES, gt=0, strict=True, description="larger files are rejected (too large) unread"
        )

    params: Params

    def __init__(self, params: RealSourceParams, base_dir: Path) -> None:
        super().__init__(params, base_dir)
        self.skipped_links = 0
        """Symbolic links under the folder that lead outside it, skipped by the last listing."""

    @property
    def root(self) -> Path:
        """The folder, resolved against the spec file's folder."""
        return self.resolve(self.params.path)

    @property
    def remote(self) -> Storage | None:
        """The folder as a Storage when `path` is a URL (not file://), else None."""
        if not is_url(self.params.path):
            return None
        storage = self.location(self.params.path)
        return None if storage.is_local else storage

    def check(self) -> list[tuple[str, str]]:
        remote = self.remote
        if remote is not None:
            if not remote.exists():
                return [("path", f"nothing at {remote.url}; upload the images there or fix `path`")]
            return []
        if not self.root.is_dir():
            return [("path", f"folder {self.root} does not exist; create it or fix `path` (relative to the spec file)")]
        return []

    def list_items(self) -> list[RealItem]:
        remote = self.remote
        if remote is not None:
            return self._list_remote(remote)
        root = self.root
        if not root.is_dir():
            raise FileNotFoundError(f"real source {self.params.source_name!r}: folder {root} does not exist")
        real_root = root.resolve()
        allowed = {ext.lower().lstrip(".") for ext in self.params.extensions}
        pattern = "**/*" if self.params.recursive else "*"
        found = []
        self.skipped_links = 0
        for path in root.glob(pattern):
            relative = path.relative_to(root)
            if any(part.startswith(".") for part in relative.parts):
                continue
            if path.is_symlink() and not path.resolve().is_relative_to(real_root):
                self.skipped_links += 1
                continue
            if path.is_file() and path.suffix.lower().lstrip(".") in allowed:
                found.append(relative.as_posix())
        return [RealItem(ref=ref, license=self.params.license) for ref in sorted(found)]

    def _allowed(self, name: str) -> bool:
        """Whether a relative POSIX name is listed: not hidden, an allowlisted extension, depth if not recursive."""
        parts = name.split("/")
        if any(part.startswith(".") for part in parts) or (len(parts) > 1 and not self.params.recursive):
            return False
        allowed = {ext.lower().lstrip(".") for ext in self.params.extensions}
        return "." in parts[-1] and parts[-1].rpartition(".")[2].lower() in allowed

    def _list_remote(self, remote: Storage) -> list[RealItem]:
        """The allowlisted objects under the URL (object stores have no links to skip)."""
        self.skipped_links = 0
        found = [name for name in remote.list() if self._allowed(name)]
        return [RealItem(ref=ref, license=self.params.license) for ref in found]

    def _read_remote(self, remote: Storage, item: RealItem) -> bytes:
        limit = self.params.max_bytes
        try:
            size = remote.size(item.ref)  # a missing object is an OSError: `unreadable`
        except UnsafePath:
            raise SampleRejected("outside the folder", f"{item.ref} leads outside {remote.url}") from None
        if size > limit:
            raise SampleRejected("too large", f"{item.ref} has {size} bytes; max_bytes is {limit}")
        data = remote.read_bytes(item.ref)
        if len(data) > limit:  # replaced since the size was read
            raise SampleRejected("too large", f"{item.ref} has more than {limit} bytes; max_bytes is {limit}")
        return data

    def read(self, item: RealItem) -> bytes:
        remote = self.remote
        if remote is not None:
            return self._read_remote(remote, item)
        root = self.root
        path = root / item.ref
        if not path.resolve().is_relative_to(root.resolve()):
            raise SampleRejected("outside the folder", f"{item.ref} leads outside {root}")
        limit = self.params.max_bytes
        with path.open("rb") as handle:  # an OSError becomes an `unreadable` reject
            size = os.fstat(handle.fileno()).st_size
            if size > limit:
                raise SampleRejected("too large", f"{item.ref} has {size} bytes; max_bytes is {limit}")
            data = handle.read(limit + 1)
        if len(data) > limit:  # grew since the stat
            raise SampleRejected("too large", f"{item.ref} has more than {limit} bytes; max_bytes is {limit}")
        return data
