"""Real images from existing WebDataset tars (local paths, URLs such as s3://bucket/shards/*.tar, or globs)."""

from __future__ import annotations

import glob
import os
import tarfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal

from pydantic import Field

from forgeset.builders.sources.base import RealItem, RealSource, RealSourceParams, real_sources
from forgeset.core.rejection import SampleRejected
from forgeset.manifests.storage import is_url

DEFAULT_MAX_BYTES = 256 * 2**20
MAX_CAPTION_BYTES = 2**20
# What reading a damaged tar raises (tarfile wraps most, not every, decompressor error).
_TAR_ERRORS = (tarfile.TarError, EOFError, zlib.error)


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


def _headers(archive: tarfile.TarFile) -> tuple[list[tarfile.TarInfo], str | None]:
    """Every member header, or those before the damage and what the damage was."""
    members = []
    try:
        for member in archive:
            members.append(member)
    except _TAR_ERRORS as err:
        return members, str(err) or type(err).__name__
    return members, None


def _caption(archive: tarfile.TarFile, member: tarfile.TarInfo, where: str) -> str:
    """A caption member's text; SampleRejected (naming tar and member) if it is too large or not UTF-8."""
    if member.size > MAX_CAPTION_BYTES:
        raise SampleRejected("caption too large", f"{where}: {member.size} bytes, at most {MAX_CAPTION_BYTES}")
    try:
        return _read_member(archive, member).decode("utf-8").strip()
    except UnicodeDecodeError as err:
        raise SampleRejected("caption not UTF-8", f"{where}: invalid byte at offset {err.start}") from None


@real_sources.register("webdataset")
class WebDatasetSource(RealSource):
    """One item per sample with an image member (ref: tar path#member); captions from `caption_extension`.

    Python's tarfile is used rather than webdataset's streaming reader because the planner needs
    random access to one member, and listing should read headers only. A damaged tar does not
    abort the build: the samples listed before the damage stay, plus one item `TAR#` that is
    rejected naming the tar; a sample whose caption is not UTF-8 is rejected naming its member.
    A URL (s3://, gs://, memory://) is globbed and read through fsspec; its items' refs keep the
    full URL (local tars: the path relative to the spec file).
    """

    class Params(RealSourceParams):
        type: Literal["webdataset"] = "webdataset"
        urls: list[str] = Field(
            min_length=1, description="tar paths or globs, relative to the spec file, or URLs (s3://...)"
        )
        image_extensions: list[str] = Field(default_factory=lambda: ["jpg", "jpeg", "png", "webp"])
        caption_extension: str | None = None
        max_bytes: int = Field(
            DEFAULT_MAX_BYTES, gt=0, strict=True, description="larger image members are rejected (too large) unread"
        )

    params: Params

    def check(self) -> list[tuple[str, str]]:
        return [
            (f"urls[{index}]", f"no file matches {pattern!r}; fix the path (relative to the spec file)")
            for index, pattern in enumerate(self.params.urls)
            if not self._matches(pattern)
        ]

    def _matches(self, pattern: str) -> list[str]:
        """The tars a pattern names, sorted: local paths, or full URLs for a URL pattern."""
        if not is_url(pattern):
            return sorted(glob.glob(str(self.resolve(pattern))))
        from fsspec.core import url_to_fs

        fs, path = url_to_fs(pattern)
        found = fs.glob(path) if glob.has_magic(path) else ([path] if fs.isfile(path) else [])
        return sorted(str(fs.unstrip_protocol(name)) for name in found)

    def _tars(self) -> list[str]:
        tars: list[str] = []
        for pattern in self.params.urls:
            matched = self._matches(pattern)
            if not matched:
                raise FileNotFoundError(f"real source {self.params.source_name!r}: no tar matches {pattern!r}")
            tars.extend(matched)
        return tars

    def list_items(self) -> list[RealItem]:
        items = []
        for path in self._tars():
            items.extend(self._list_tar(path, path if is_url(path) else os.path.relpath(path, self.base_dir)))
        return items

    @contextmanager
    def _open_tar(self, path: str) -> Iterator[tarfile.TarFile]:
        """A tar opened for random access: a local path, or a URL through fsspec (seekable, read-ahead)."""
        if not is_url(path):
            with tarfile.open(self.resolve(path)) as archive:
                yield archive
            return
        import fsspec

        with fsspec.open(path, "rb") as handle, tarfile.open(fileobj=handle) as archive:
            yield archive

    def _list_tar(self, path: str, relative: str) -> list[RealItem]:
        """The samples of one tar; one `TAR#` item more (rejected when read) if the tar is damaged."""
        damaged = RealItem(ref=f"{relative}#", license=self.params.license)
        try:
            with self._open_tar(path) as archive:
                items, complete = self._list_members(archive, relative)
        except _TAR_ERRORS:  # not a tar at all (the listing itself catches what follows the opening)
            return [damaged]
        return items if complete else [*items, damaged]

    def _list_members(self, archive: tarfile.TarFile, relative: str) -> tuple[list[RealItem], bool]:
        """The samples listed from an open tar, and whether every header could be read."""
        wanted = [ext.lower() for ext in self.params.image_extensions]
        members: dict[str, dict[str, tarfile.TarInfo]] = {}
        headers, damage = _headers(archive)  # keep what was listed before any damage
        for member in headers:
            if member.isfile():
                key, ext = _split_member(member.name)
                members.setdefault(key, {})[ext] = member
        items = []
        for key in sorted(members):
            image_ext = next((ext for ext in wanted if ext in members[key]), None)
            if image_ext is None:
                continue
            ref = f"{relative}#{members[key][image_ext].name}"
            caption = None
            cap = self.params.caption_extension
            if cap and cap in members[key]:
                try:
                    caption = _caption(archive, members[key][cap], ref)
                except (SampleRejected, *_TAR_ERRORS):
                    caption = None  # read() rejects the sample, naming the member
            items.append(RealItem(ref=ref, caption=caption, license=self.params.license))
        return items, damage is None

    def read(self, item: RealItem) -> bytes:
        tar_path, _, name = item.ref.partition("#")
        try:
            with self._open_tar(tar_path) as archive:  # a missing file is an OSError: `unreadable`
                return self._read_member(archive, tar_path, name)
        except _TAR_ERRORS as err:  # only the opening: _read_member turns what follows into rejects
            raise SampleRejected("not a tar", f"{tar_path}: {err}") from None

    def _read_member(self, archive: tarfile.TarFile, tar_path: str, name: str) -> bytes:
        """Member `name`'s bytes after checking its size and its caption; SampleRejected naming both otherwise."""
        members, damage = _headers(archive)
        if not name:  # the item listed for a damaged tar
            raise SampleRejected(
                "damaged tar", f"{tar_path}: {damage or 'its headers could not all be read when listed'}"
            )
        where = f"{tar_path}#{name}"
        found = [m for m in members if m.name == name]
        if not found:
            raise SampleRejected("bad tar member", f"{where}: not in the tar")
        member = found[-1]
        if member.size > self.params.max_bytes:
            raise SampleRejected("too large", f"{where} has {member.size} bytes; max_bytes is {self.params.max_bytes}")
        try:
            cap = self.params.caption_extension
            if cap:
                key = _split_member(name)[0]
                captions = [m for m in members if m.isfile() and _split_member(m.name) == (key, cap)]
                if captions:
                    _caption(archive, captions[-1], f"{tar_path}#{captions[-1].name}")
            return _read_member(archive, member)
        except _TAR_ERRORS as err:
            raise SampleRejected("bad tar member", f"{where}: {err}") from None
