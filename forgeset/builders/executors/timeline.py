"""A build's timeline as Chrome-trace JSON (chrome://tracing, Perfetto): where the time of a build goes.

Events are spans in wall-clock microseconds, the unit Ray's own `ray.timeline()` uses, so the
driver's view (planning, shards in flight, batches per model host) and Ray's task events can be
shown in one file. Written by hand rather than with a tracing library: the format is a JSON list
of small dicts and the build needs nothing else from one.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


class Timeline:
    """Records spans on named tracks; `write` saves them with the tracks' names."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self._tracks: dict[str, int] = {}
        self._lock = threading.Lock()

    def _track(self, name: str) -> int:
        if name not in self._tracks:
            self._tracks[name] = len(self._tracks) + 1
        return self._tracks[name]

    def span(self, name: str, track: str, start_s: float, end_s: float, **args: Any) -> None:
        """A span from `start_s` to `end_s` (time.time() seconds) on `track`."""
        with self._lock:
            self.events.append(
                {
                    "name": name,
                    "cat": "forgeset",
                    "ph": "X",
                    "ts": round(start_s * 1e6),
                    "dur": max(0, round((end_s - start_s) * 1e6)),
                    "pid": os.getpid(),
                    "tid": self._track(track),
                    "args": args,
                }
            )

    @contextmanager
    def measure(self, name: str, track: str, **args: Any) -> Iterator[None]:
        """A span around the body of a `with` block."""
        start = time.time()
        try:
            yield
        finally:
            self.span(name, track, start, time.time(), **args)

    def extend(self, events: list[dict[str, Any]]) -> None:
        """Add events recorded elsewhere (Ray's task and actor events)."""
        with self._lock:
            self.events.extend(events)

    def write(self, path: Path) -> None:
        """Save every event, with metadata naming the driver's tracks."""
        names = [
            {"name": "thread_name", "ph": "M", "pid": os.getpid(), "tid": tid, "args": {"name": track}}
            for track, tid in self._tracks.items()
        ]
        process = {"name": "process_name", "ph": "M", "pid": os.getpid(), "args": {"name": "forgeset driver"}}
        path.write_text(json.dumps([process, *names, *self.events]))
