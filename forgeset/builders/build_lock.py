"""One build at a time per OUT: an advisory lock that the kernel drops when its holder dies.

`flock` on OUT/.forgeset/build.lock, not a PID file: a build killed with SIGKILL leaves no stale
lock behind, and the next build starts at once. The holder's PID is written into the file so a
refused build can say who holds it.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import IO


class BuildLocked(Exception):
    """Another live build holds OUT's lock; the message names its PID."""


class BuildLock:
    """Held from `acquire` until `release` (or the process's end)."""

    def __init__(self, path: Path, handle: IO[str]) -> None:
        self.path = path
        self.handle = handle

    @classmethod
    def acquire(cls, path: Path) -> BuildLock:
        """Take the lock without waiting, or raise BuildLocked naming the holder's PID."""
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(path, "a+", encoding="ascii")  # noqa: SIM115 - held open for the build's life
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            handle.close()
            raise BuildLocked(
                f"another build (PID {holder}) is writing to {path.parent.parent}; wait for it to end or stop it"
            ) from None
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
