"""Real images from a local folder, listed recursively in sorted order."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from forgeset.builders.sources.base import RealItem, RealSource, RealSourceParams, real_sources

DEFAULT_EXTENSIONS = ["jpg", "jpeg", "png", "webp", "tif", "tiff", "bmp", "gif"]


@real_sources.register("folder")
class FolderSource(RealSource):
    """Files under `path` whose extension is allowlisted; hidden files and folders are skipped."""

    class Params(RealSourceParams):
        type: Literal["folder"] = "folder"
        path: str = Field(description="folder, relative to the spec file unless absolute")
        recursive: bool = True
        extensions: list[str] = Field(default_factory=lambda: list(DEFAULT_EXTENSIONS))

    params: Params

    def list_items(self) -> list[RealItem]:
        root = self.resolve(self.params.path)
        if not root.is_dir():
            raise FileNotFoundError(f"real source {self.params.source_name!r}: folder {root} does not exist")
        allowed = {ext.lower().lstrip(".") for ext in self.params.extensions}
        pattern = "**/*" if self.params.recursive else "*"
        found = []
        for path in root.glob(pattern):
            relative = path.relative_to(root)
            if any(part.startswith(".") for part in relative.parts) or not path.is_file():
                continue
            if path.suffix.lower().lstrip(".") in allowed:
                found.append(relative.as_posix())
        return [RealItem(ref=ref, license=self.params.license) for ref in sorted(found)]

    def read(self, item: RealItem) -> bytes:
        return (self.resolve(self.params.path) / item.ref).read_bytes()
