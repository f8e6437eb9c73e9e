"""Real images from existing WebDataset tars (local paths or globs)."""

from __future__ import annotations

import glob
import os
import tarfile
from typing import Literal

from pydantic import Field

from forgeset.builders.sources.base import RealItem, RealSource, RealSourceParams, real_sources


def _split_member(name: str) -> tuple[str, str]:
    """WebDataset's rule: the key is everything before the first dot of the file name."""
    folder, _, base = name.rpartition("/")
    stem, _, ext = base.partition(".")
    return (f"{folder}/{stem}" if folder else stem), ext.lower()


def _read_member(archive: tarfile.TarFile, member: str | tarfile.TarInfo) -> bytes:
    """The bytes of a regular-file member (extractfile gives None for anything else)."""
    file = archive.extractfile(member)
    if file is None:
        name = member.name if isinstance(member, tarfile.TarInfo) else member
        raise tarfile.TarError(f"member {name!r} is not a regular file")
    return file.read()


@real_sources.register("webdataset")
class WebDatasetSource(RealSource):
    """One item per sample with an image member (ref: tar path#member); captions from `caption_extension`.

    Python's tarfile is used rather than webdataset's streaming reader because the planner needs
    random access to one member, and listing should read headers only.
    """

    class Params(RealSourceParams):
        type: Literal["webdataset"] = "webdataset"
        urls: list[str] = Field(min_length=1, description="tar paths or globs, relative to the spec file")
        image_extensions: list[str] = Field(default_factory=lambda: ["jpg", "jpeg", "png", "webp"])
        caption_extension: str | None = None

    params: Params

    def _tars(self) -> list[str]:
        tars: list[str] = []
        for pattern in self.params.urls:
            matched = sorted(glob.glob(str(self.resolve(pattern))))
            if not matched:
                raise FileNotFoundError(f"real source {self.params.source_name!r}: no tar matches {pattern!r}")
            tars.extend(matched)
        return tars

    def list_items(self) -> list[RealItem]:
        items = []
        wanted = [ext.lower() for ext in self.params.image_extensions]
        for path in self._tars():
            relative = os.path.relpath(path, self.base_dir)
            with tarfile.open(path) as archive:
                members: dict[str, dict[str, tarfile.TarInfo]] = {}
                for member in archive.getmembers():
                    if member.isfile():
                        key, ext = _split_member(member.name)
                        members.setdefault(key, {})[ext] = member
                for key in sorted(members):
                    image_ext = next((ext for ext in wanted if ext in members[key]), None)
                    if image_ext is None:
                        continue
                    caption = None
                    cap = self.params.caption_extension
                    if cap and cap in members[key]:
                        caption = _read_member(archive, members[key][cap]).decode("utf-8").strip()
                    items.append(
                        RealItem(
                            ref=f"{relative}#{members[key][image_ext].name}",
                            caption=caption,
                            license=self.params.license,
                        )
                    )
        return items

    def read(self, item: RealItem) -> bytes:
        tar_path, _, member = item.ref.partition("#")
        with tarfile.open(self.resolve(tar_path)) as archive:
            return _read_member(archive, member)
