"""Fault injection for the reliability tests: die with SIGKILL at a named point of the write path.

`FORGESET_KILL_AT=POINT:N` makes the process that reaches checkpoint POINT for the N-th time
kill itself; `POINT:N:FILE` does so only if FILE does not exist yet (it is created first), so a
restarted worker that reaches the point again lives on. Unset (always, outside tests) a
checkpoint is one dictionary lookup.
"""

from __future__ import annotations

import os
import signal
from collections import Counter
from pathlib import Path

FAULT_ENV = "FORGESET_KILL_AT"
# Where the write path can be cut: inside a tar, after its rename, after the shard's rows, after
# its done-marker, inside finalize (after the manifest, after the index), and in a model batch.
POINTS = (
    "tar-member",
    "tar-written",
    "rows-written",
    "marker-written",
    "manifest-written",
    "index-written",
    "stage-batch",
)
_reached: Counter[str] = Counter()


def checkpoint(point: str) -> None:
    """Count this point; SIGKILL this process if FORGESET_KILL_AT names it and its count."""
    plan = os.environ.get(FAULT_ENV)
    if not plan:
        return
    _reached[point] += 1
    name, _, rest = plan.partition(":")
    count, _, once = rest.partition(":")
    if name != point or _reached[point] != int(count or 1):
        return
    if once:
        marker = Path(once)
        if marker.exists():
            return
        marker.touch()
    os.kill(os.getpid(), signal.SIGKILL)
