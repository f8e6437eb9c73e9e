"""Where a corpus lives: a local folder (plain os calls) or an fsspec URL (s3://, gs://, memory://).

Every name under the root is checked by `layout.relative_name` (and, locally, `path_inside`)
before it becomes a path or key. Files are published atomically: locally a temporary file in
the target folder is fsynced and renamed over the final name; on object storage the bytes go to
a temporary key first and are then copied to the final key, so a reader never sees a partial
object at a final key, and a writer killed mid-upload leaves only a `*.tmp` key for the next
build to remove. The done-marker is published last by the caller.

Errors never echo `storage_options` (they may hold credentials): values are redacted.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager, suppress
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from forgeset.core.faults import checkpoint
from forgeset.manifests.layout import path_inside, relative_name

TMP_SUFFIX = ".tmp"
# Where files bound for object storage are written before their upload (a worker's scratch disk).
SCRATCH_ENV = "FORGESET_SCRATCH"
_URL = re.compile(r"^(?P<protocol>[a-zA-Z][a-zA-Z0-9+.-]*)://(?P<rest>.*)$", re.DOTALL)
_BLOCK = 1 << 20


class StorageError(Exception):
    """A corpus root that cannot be opened (unknown protocol, missing client library, bad options)."""


def is_url(root: str | Path) -> bool:
    """Whether `root` is a URL (protocol://...) rather than a local path."""
    return isinstance(root, str) and _URL.match(root) is not None


def display_url(url: str) -> str:
    """`url` without any user:password@ part, for messages."""
    match = _URL.match(url)
    if match is None:
        return url
    host, slash, path = match["rest"].partition("/")
    return f"{match['protocol']}://{host.rpartition('@')[2]}{slash}{path}"


def _redacted(text: str, options: Mapping[str, Any]) -> str:
    """`text` with every string found in `options` (at any depth) replaced by ***."""
    secrets: list[str] = []

    def collect(value: object) -> None:
        if isinstance(value, str) and len(value) >= 4:
            secrets.append(value)
        elif isinstance(value, Mapping):
            for item in value.values():
                collect(item)
        elif isinstance(value, list | tuple):
            for item in value:
                collect(item)

    collect(options)
    for secret in sorted(secrets, key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


def local_stamp(path: Path) -> str:
    """A local file's cheap identity, "SIZE:MTIME_NS"."""
    info = path.stat()
    return f"{info.st_size}:{info.st_mtime_ns}"


def _object_stamp(info: Mapping[str, Any]) -> str:
    """ "SIZE:TAG" from an fsspec info dict: the ETag (S3), generation (GCS), else a modification time."""
    lowered = {str(key).lower(): value for key, value in info.items()}
    tag = next((lowered[k] for k in ("etag", "generation", "mtime", "lastmodified", "created") if lowered.get(k)), "")
    if isinstance(tag, datetime):  # listings and info of some filesystems disagree on the type
        tag = tag.timestamp()
    return f"{info['size']}:{str(tag).strip(chr(34))}"


def _fsynced_copy(source: Path, target: Path) -> None:
    with open(source, "rb") as reader, open(target, "wb") as writer:
        shutil.copyfileobj(reader, writer, _BLOCK)
        writer.flush()
        os.fsync(writer.fileno())


def _temporary_name(name: str) -> str:
    """NAME.PID-RANDOM.tmp: unique per process and machine (two nodes may share a PID)."""
    return f"{name}.{os.getpid()}-{uuid.uuid4().hex[:8]}{TMP_SUFFIX}"


class Storage:
    """A corpus root: relative POSIX names in, bytes out. Local paths use os calls; URLs use fsspec."""

    def __init__(self, root: str | Path, storage_options: Mapping[str, Any] | None = None) -> None:
        options = dict(storage_options or {})
        self.url = display_url(str(root))
        """The root for messages (no credentials)."""
        self.local: Path | None = None
        """The root folder when the corpus is on a local filesystem, else None."""
        if not is_url(root) or str(root).startswith("file://"):
            self.local = Path(str(root).removeprefix("file://")).expanduser()
            self.fs: Any = None
            self.root_path = str(self.local)
            return
        from fsspec.core import url_to_fs

        try:
            self.fs, path = url_to_fs(str(root), **options)
        except ImportError as err:
            raise StorageError(f"{self.url}: {err}; install the client library for this protocol") from None
        except Exception as err:  # any client error: its text may echo the options, so it is redacted
            reason = _redacted(f"{type(err).__name__}: {err}", options)
            raise StorageError(f"{self.url}: cannot open: {reason}") from None
        self.root_path = path.rstrip("/")
        """The root as the filesystem names it (bucket/prefix for S3)."""

    @classmethod
    def of(cls, root: str | Path | Storage) -> Storage:
        """`root` itself if it is a Storage, else a Storage over it."""
        return root if isinstance(root, Storage) else cls(root)

    @property
    def is_local(self) -> bool:
        """Whether the root is a local folder."""
        return self.local is not None

    def __repr__(self) -> str:
        return f"Storage({self.url!r})"

    # Names --------------------------------------------------------------------------------------

    def local_path(self, *parts: str) -> Path:
        """The local path of a name under a local root (checked with `path_inside`)."""
        if self.local is None:
            raise StorageError(f"{self.url} is not a local folder")
        return path_inside(self.local, *parts) if parts else self.local

    def _path(self, *parts: str) -> str:
        """The filesystem path of a name under the root (local path or bucket/key)."""
        if self.local is not None:
            return str(self.local_path(*parts))
        return f"{self.root_path}/{relative_name(self.url, *parts)}" if parts else self.root_path

    def url_of(self, *parts: str) -> str:
        """A name's full address for other readers (a local path, or protocol://bucket/key)."""
        if self.local is not None:
            return self._path(*parts)
        return str(self.fs.unstrip_protocol(self._path(*parts)))

    # Reading ------------------------------------------------------------------------------------

    def exists(self, *parts: str) -> bool:
        """Whether a file (or folder / prefix) exists under the name."""
        if self.local is not None:
            return self.local_path(*parts).exists()
        path = self._path(*parts)
        self.fs.invalidate_cache(path)  # another process or node may have written it
        return bool(self.fs.exists(path))

    def size(self, *parts: str) -> int:
        """A file's size in bytes."""
        if self.local is not None:
            return self.local_path(*parts).stat().st_size
        return int(self.fs.size(self._path(*parts)))

    def stamp(self, *parts: str) -> str:
        """A cheap identity of a file's current content: "SIZE:MTIME_NS" locally, "SIZE:ETAG" on object stores.

        A file replaced by other content gets another stamp (object stores: a new ETag or
        generation; filesystems without either fall back to the modification time).
        """
        if self.local is not None:
            return local_stamp(self.local_path(*parts))
        path = self._path(*parts)
        self.fs.invalidate_cache(path)
        return _object_stamp(self.fs.info(path))

    def stamps(self, *prefix: str) -> dict[str, str]:
        """Every file's stamp under a folder/prefix, by relative name: one listing on object stores.

        Resume checks thousands of shards; a LIST page gives a thousand ETags where `stamp`
        costs one HEAD request each.
        """
        if self.local is not None:
            return {name: local_stamp(self.local / name) for name in self.list(*prefix)}
        path = self._path(*prefix)
        self.fs.invalidate_cache(path)
        start = len(self.root_path) + 1
        found = self.fs.find(path, withdirs=False, detail=True)
        return {str(name)[start:]: _object_stamp(info) for name, info in sorted(found.items())}

    @contextmanager
    def open(self, *parts: str) -> Iterator[IO[bytes]]:
        """A file opened for reading bytes."""
        if self.local is not None:
            with open(self.local_path(*parts), "rb") as handle:
                yield handle
        else:
            with self.fs.open(self._path(*parts), "rb") as handle:
                yield handle

    def open_handle(self, *parts: str) -> IO[bytes]:
        """A file opened for reading bytes that the caller closes (for readers that outlive a with block)."""
        if self.local is not None:
            return open(self.local_path(*parts), "rb")
        return self.fs.open(self._path(*parts), "rb")

    def read_bytes(self, *parts: str) -> bytes:
        """A file's whole content."""
        if self.local is not None:
            return self.local_path(*parts).read_bytes()
        return bytes(self.fs.cat_file(self._path(*parts)))

    def sha256(self, *parts: str) -> str:
        """sha256 of a file, streamed in 1 MiB blocks."""
        digest = hashlib.sha256()
        with self.open(*parts) as handle:
            for block in iter(lambda: handle.read(_BLOCK), b""):
                digest.update(block)
        return digest.hexdigest()

    def list(self, *prefix: str) -> list[str]:
        """Every file under a folder/prefix (recursive), as sorted POSIX names relative to the root."""
        if self.local is not None:
            folder = self.local_path(*prefix)
            if not folder.is_dir():
                return []
            return sorted(p.relative_to(self.local).as_posix() for p in folder.rglob("*") if p.is_file())
        path = self._path(*prefix)
        self.fs.invalidate_cache(path)
        start = len(self.root_path) + 1
        return sorted(str(found)[start:] for found in self.fs.find(path, withdirs=False))

    # Writing ------------------------------------------------------------------------------------

    def scratch_file(self, *parts: str) -> Path:
        """Where to write a local file that `publish_file` then moves to this name.

        Locally: a unique temporary name beside the final one (publishing is a rename). For object
        storage: a unique file in the scratch folder ($FORGESET_SCRATCH or the system temp dir).
        """
        if self.local is not None:
            final = self.local_path(*parts)
            final.parent.mkdir(parents=True, exist_ok=True)
            return final.with_name(_temporary_name(final.name))
        name = relative_name(self.url, *parts).rpartition("/")[2]
        scratch = Path(os.environ.get(SCRATCH_ENV) or tempfile.gettempdir())
        scratch.mkdir(parents=True, exist_ok=True)
        return scratch / _temporary_name(name)

    def publish_file(self, source: Path, *parts: str) -> None:
        """Move a finished local file (fsynced by its writer) to a name, atomically; `source` is consumed."""
        try:
            if self.local is not None:
                final = self.local_path(*parts)
                final.parent.mkdir(parents=True, exist_ok=True)
                try:
                    os.replace(source, final)
                except OSError:  # another filesystem: copy beside the target, then rename
                    temporary = final.with_name(_temporary_name(final.name))
                    try:
                        _fsynced_copy(source, temporary)
                        os.replace(temporary, final)
                    finally:
                        temporary.unlink(missing_ok=True)
            else:
                self._publish_object(lambda key: self.fs.put_file(str(source), key), *parts)
        finally:
            source.unlink(missing_ok=True)

    def publish_bytes(self, data: bytes, *parts: str) -> None:
        """Write `data` to a name atomically (locally fsynced before the rename)."""
        if self.local is not None:
            temporary = self.scratch_file(*parts)
            try:
                with open(temporary, "wb") as handle:
                    handle.write(data)
                    handle.flush()
                    os.fsync(handle.fileno())
                os.replace(temporary, self.local_path(*parts))
            finally:
                temporary.unlink(missing_ok=True)
        else:
            self._publish_object(lambda key: self.fs.pipe_file(key, data), *parts)

    def publish_atomically(self, source: Path | bytes, *parts: str) -> None:
        """`publish_file` for a local file (consumed), `publish_bytes` for bytes."""
        if isinstance(source, bytes):
            self.publish_bytes(source, *parts)
        else:
            self.publish_file(source, *parts)

    def _publish_object(self, upload: Callable[[str], object], *parts: str) -> None:
        """Upload to FINAL.PID-RANDOM.tmp, copy to FINAL, delete the temporary key."""
        final = self._path(*parts)
        temporary = f"{final.rpartition('/')[0]}/{_temporary_name(final.rpartition('/')[2])}"
        try:
            upload(temporary)
            checkpoint("object-uploaded")
            self.fs.copy(temporary, final)
        finally:
            with suppress(FileNotFoundError):
                self.fs.rm_file(temporary)
        self.fs.invalidate_cache(final)

    def remove(self, *parts: str) -> None:
        """Delete a file (nothing if it does not exist)."""
        if self.local is not None:
            self.local_path(*parts).unlink(missing_ok=True)
            return
        with suppress(FileNotFoundError):
            self.fs.rm_file(self._path(*parts))

    def remove_tree(self, *parts: str) -> None:
        """Delete a folder/prefix and everything under it (nothing if it does not exist)."""
        if self.local is not None:
            path = self.local_path(*parts)
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink(missing_ok=True)
            return
        self.remove_many(self.list(*parts))

    def remove_many(self, names: Iterable[str]) -> None:
        """Delete files by relative name (missing ones are ignored); batched on object stores."""
        if self.local is not None:
            for name in names:
                self.local_path(name).unlink(missing_ok=True)
            return
        paths = [self._path(name) for name in names]
        if not paths:
            return
        try:
            self.fs.rm(paths)  # S3: DeleteObjects, a thousand keys a request
        except FileNotFoundError:  # some filesystems refuse the whole batch for one missing name
            for path in paths:
                with suppress(FileNotFoundError):
                    self.fs.rm_file(path)
