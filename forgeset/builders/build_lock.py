"""One build at a time per OUT: an advisory lock that the kernel drops when its holder dies.

`flock` on OUT/.forgeset/build.lock, not a PID file: a build killed with SIGKILL leaves no stale
lock behind, and the next build starts at once. The holder's PID is written into the file so a
refused build can say who holds it.

Object storage has no flock: the lock of an OUT URL is a local file keyed by the URL under the
cache folder ($FORGESET_CACHE/locks/). It keeps two builds started on the same machine from
writing to one URL; builds started on two machines are not kept apart (a documented limitation).
"""

from __future__ import annotations

import fcntl
import hashlib
import os
from pathlib import Path
from typing import IO

from forgeset.core.builtin_models import cache_root
from forgeset.manifests.layout import Layout
from forgeset.manifests.storage import Storage


class BuildLocked(Exception):
    """Another live build holds OUT's lock; the message names its PID."""


class BuildLock:
    """Held from `acquire` until `release` (or the process's end)."""

    @classmethod
    def path_for(cls, storage: Storage) -> Path:
        """The lock file of OUT: OUT/.forgeset/build.lock, or for a URL a local file keyed by it."""
        if storage.local is not None:
            return Layout(storage.local).build_lock
        return cache_root() / "locks" / f"{hashlib.sha256(storage.url.encode()).hexdigest()[:32]}.lock"

    def __init__(self, path: Path, handle: IO[str]) -> None:
        self.path = path
        self.handle = handle

    @classmethod
    def acquire(cls, path: Path, target: str | None = None) -> BuildLock:
        """Take the lock without waiting, or raise BuildLocked naming the holder's PID and `target` (default: OUT)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(path, "a+", encoding="ascii")  # noqa: SIM115 - held open for the build's life
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            handle.close()
            where = target or path.parent.parent
            message = f"another build (PID {holder}) is writing to {where}; wait for it to end or stop it"
            raise BuildLocked(message) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        return cls(path, handle)

    def release(self) -> None:
        """Let the next build in (the file stays; an unlocked file means no build is running)."""
        if not self.handle.closed:
            fcntl.flock(self.handle.fileno(), fcntl.LOCK_UN)
            self.handle.close()
