"""Real images from a local folder, listed recursively in sorted order."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field

from forgeset.builders.sources.base import RealItem, RealSource, RealSourceParams, real_sources
from forgeset.core.rejection import SampleRejected

DEFAULT_EXTENSIONS = ["jpg", "jpeg", "png", "webp", "tif", "tiff", "bmp", "gif"]
DEFAULT_MAX_BYTES = 256 * 2**20


@real_sources.register("folder")
class FolderSource(RealSource):
    """Files under `path` whose extension is allowlisted; hidden files and folders are skipped.

    A symbolic link that leads outside the folder is skipped when listing (and counted in
    `skipped_links`); a file larger than `max_bytes` is rejected before it is read.
    """

    class Params(RealSourceParams):
        type: Literal["folder"] = "folder"
        path: str = Field(description="folder, relative to the spec file unless absolute")
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

    def check(self) -> list[tuple[str, str]]:
        if not self.root.is_dir():
            return [("path", f"folder {self.root} does not exist; create it or fix `path` (relative to the spec file)")]
        return []

    def list_items(self) -> list[RealItem]:
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

    def read(self, item: RealItem) -> bytes:
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
