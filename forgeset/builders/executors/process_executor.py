"""Run shards in a pool of worker processes on this machine: every core busy, no cluster start-up.

Each worker builds whole shards exactly as the in-process executor does (a `ShardMaker` per
worker: the same model batches, the same code, so the same bytes), with torch pinned to one thread.
The workers start (and import torch and diffusers) while the driver plans; model batches are
reported to the driver through a queue, so progress still advances per batch.

For builds on one machine that are too small to pay for Ray's start-up (`--executor auto` picks
it for them); Ray remains the executor of clusters and large builds.
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from forgeset.builders.executors.base import Executor, ShardFailed, planned_stages
from forgeset.builders.executors.local_executor import ShardMaker, _import_heavy_modules, model_jobs
from forgeset.builders.planner import Plan, ShardPlan, ShardRef
from forgeset.builders.shard_builder import BuildContext, ShardSummary

# Fork where the platform has it: a worker starts with the driver's imports (torch included) in a
# fraction of a second instead of importing them again (seconds per worker); the driver has started
# no torch threads by then (its thread pool starts with the first parallel op). Elsewhere: spawn.
_START_METHOD = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"

# Per worker process: its shard maker (models loaded once) and the queue batch counts go to.
_MAKER: ShardMaker | None = None
_BATCHES: Any = None


def _fresh_standard_streams() -> None:
    """Give a forked worker its own stdout/stderr objects.

    The driver's progress display may hold the lock of its stream proxies at the moment of the
    fork; a worker that then writes (a library's warning or progress bar) would wait for it forever.
    """
    if _START_METHOD != "fork":
        return
    for name, fd in (("stdout", 1), ("stderr", 2)):
        try:
            setattr(sys, name, os.fdopen(os.dup(fd), "w", buffering=1, encoding="utf-8", errors="replace"))
        except OSError:  # no such descriptor (a daemonized parent): writes go nowhere
            setattr(sys, name, open(os.devnull, "w", encoding="utf-8"))  # noqa: SIM115 - lives with the worker


def _worker_start(ctx: BuildContext, batches: Any, heavy: bool) -> None:
    """Pool initializer: fresh standard streams, the build context and the progress queue; import torch early."""
    global _MAKER, _BATCHES
    _fresh_standard_streams()
    _MAKER, _BATCHES = ShardMaker(ctx), batches
    if heavy:
        _import_heavy_modules()


def _make_shard(shard: ShardPlan) -> ShardSummary:
    """Build one shard in this worker, reporting each model batch's job count."""
    assert _MAKER is not None
    return _MAKER.make(shard, on_batch=_BATCHES.put)


class ProcessExecutor(Executor):
    """A pool of `workers` processes building shards in plan order (see _START_METHOD)."""

    def __init__(self, workers: int | None = None) -> None:
        self.workers = max(1, workers or os.cpu_count() or 1)
        self._pool: ProcessPoolExecutor | None = None
        self._batches: Any = None

    def start(self, ctx: BuildContext) -> None:
        """Spawn the workers now, so their imports overlap the driver's planning."""
        if self._pool is not None:
            return
        context = multiprocessing.get_context(_START_METHOD)
        self._batches = context.SimpleQueue()
        self._pool = ProcessPoolExecutor(
            self.workers,
            mp_context=context,
            initializer=_worker_start,
            initargs=(ctx, self._batches, bool(planned_stages(ctx))),
        )
        for _ in range(self.workers):  # workers are created lazily; ask for all of them now
            self._pool.submit(os.getpid)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def run(
        self,
        ctx: BuildContext,
        plan: Plan,
        shards: Sequence[ShardRef],
        on_done: Callable[[ShardSummary], None],
        stop: threading.Event | None = None,
        on_batch: Callable[[int], None] | None = None,
    ) -> None:
        self.start(ctx)
        assert self._pool is not None
        pending: dict[Future[ShardSummary], tuple[ShardRef, ShardPlan, float]] = {}
        refs = iter(shards)
        window = 2 * self.workers  # every worker busy, and shards finish close to plan order
        try:
            while True:
                while (stop is None or not stop.is_set()) and len(pending) < window:
                    ref = next(refs, None)
                    if ref is None:
                        break
                    shard = plan.shard(ref)
                    pending[self._pool.submit(_make_shard, shard)] = (ref, shard, time.time())
                if not pending:
                    return
                finished, _ = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
                self._drain(on_batch)
                for future in sorted(finished, key=lambda f: pending[f][0].path):
                    ref, shard, started = pending.pop(future)
                    summary = self._result(future, ref)
                    if self.timeline is not None:
                        self.timeline.span(f"shard {ref.path}", "shards", started, time.time())
                    if on_batch and ref.count > model_jobs(ctx, shard):
                        on_batch(ref.count - model_jobs(ctx, shard))
                    on_done(summary)
        finally:
            for future in pending:  # a failure or a stop: shards not started are dropped
                future.cancel()

    def _drain(self, on_batch: Callable[[int], None] | None) -> None:
        """Pass the batch counts the workers reported to the driver's progress."""
        while True:
            try:
                if self._batches.empty():
                    return
                jobs = self._batches.get()
            except (OSError, queue.Empty):
                return
            if on_batch:
                on_batch(int(jobs))

    @staticmethod
    def _result(future: Future[ShardSummary], ref: ShardRef) -> ShardSummary:
        try:
            return future.result()
        except OSError:
            raise  # disk full, a file-size limit: the caller says what to do
        except BrokenProcessPool as err:
            raise ShardFailed(f"shard {ref.path} failed: a worker process died ({err})") from err
        except Exception as err:  # named like the other executors' failures
            raise ShardFailed(f"shard {ref.path} failed: {type(err).__name__}: {err}") from err
