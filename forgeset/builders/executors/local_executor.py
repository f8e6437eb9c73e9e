"""Run shards in this process, one after another: no cluster start-up, the same bytes as Ray.

For small corpora (`--executor auto` picks it for them), debugging (a breakpoint works), and
tests that do not test Ray itself.
"""

from __future__ import annotations

import importlib
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from forgeset.builders.executors.base import Executor, ShardFailed, planned_stages, stage_batches
from forgeset.builders.planner import Plan, ShardPlan, ShardRef, make_stage
from forgeset.builders.shard_builder import BuildContext, ShardSummary, build_shard
from forgeset.builders.sources import RealSource
from forgeset.builders.stage_runner import run_stage
from forgeset.generators.base import Stage

# What a model stage imports first; seconds of work that can overlap with planning.
_HEAVY_MODULES = ("torch", "diffusers")


def _import_heavy_modules() -> None:
    for name in _HEAVY_MODULES:
        try:
            importlib.import_module(name)
        except ImportError:  # a stage that needs it reports it when it loads
            return


@dataclass
class ShardMaker:
    """Builds whole shards in one process: each stage's model is loaded once, on first use.

    The in-process executor uses one; each worker of the process pool holds its own.
    """

    ctx: BuildContext
    stages: dict[str, Stage] = field(default_factory=dict)
    sources: dict[str, RealSource] = field(default_factory=dict)

    def make(
        self,
        shard: ShardPlan,
        on_batch: Callable[[int], None] | None = None,
        span: Callable[..., None] | None = None,
    ) -> ShardSummary:
        """Run the shard's model batches, then write it; `on_batch(jobs)` after each batch."""
        ctx = self.ctx
        params_by_name = {params.generator_name: params for params in ctx.spec.stages}
        batches = []
        for name, jobs in stage_batches(ctx, shard):
            if name not in self.stages:
                started = time.time()
                self.stages[name] = make_stage(params_by_name[name], ctx.base_dir, ctx.spec.image.size)
                self.stages[name].setup()
                if span:
                    span(f"load {name}", started)
            started = time.time()
            batches.append(run_stage(ctx, self.stages[name], jobs, self.sources))
            if span:
                span(f"batch {name}", started, shard=shard.path, jobs=len(jobs))
            if on_batch:
                on_batch(len(jobs))
        started = time.time()
        summary = build_shard(ctx, shard, batches)
        if span:
            span("write shard", started, shard=shard.path)
        return summary


def model_jobs(ctx: BuildContext, shard: ShardPlan) -> int:
    """How many of the shard's jobs go through a model batch (the rest are reported with the shard)."""
    return sum(len(jobs) for _, jobs in stage_batches(ctx, shard))


class LocalExecutor(Executor):
    """Shards are built in plan order in this process (see ShardMaker)."""

    def __init__(self) -> None:
        self._imports: threading.Thread | None = None

    def start(self, ctx: BuildContext) -> None:
        """Import torch and diffusers in the background while the driver plans (models load in `run`,
        on this thread, where torch's thread pinning applies)."""
        if planned_stages(ctx) and any(name not in sys.modules for name in _HEAVY_MODULES):
            self._imports = threading.Thread(target=_import_heavy_modules, name="forgeset-imports", daemon=True)
            self._imports.start()

    def run(
        self,
        ctx: BuildContext,
        plan: Plan,
        shards: Sequence[ShardRef],
        on_done: Callable[[ShardSummary], None],
        stop: threading.Event | None = None,
        on_batch: Callable[[int], None] | None = None,
    ) -> None:
        if self._imports is not None:
            self._imports.join()
        threads = _torch_threads()
        maker = ShardMaker(ctx)
        try:
            for ref in shards:
                if stop is not None and stop.is_set():
                    return
                shard_start = time.time()
                try:
                    shard = plan.shard(ref)
                    summary = maker.make(shard, on_batch, self._span)
                except OSError:
                    raise  # disk full, a file-size limit: the caller says what to do
                except Exception as err:  # named like the Ray executor's failures
                    raise ShardFailed(f"shard {ref.path} failed: {type(err).__name__}: {err}") from err
                if self.timeline is not None:
                    self.timeline.span(f"shard {ref.path}", "shards", shard_start, time.time())
                if on_batch and ref.count > model_jobs(ctx, shard):
                    on_batch(ref.count - model_jobs(ctx, shard))
                on_done(summary)
        finally:
            _restore_torch_threads(threads)

    def _span(self, name: str, start_s: float, **args: object) -> None:
        if self.timeline is not None:
            self.timeline.span(name, "in-process", start_s, time.time(), **args)


def _torch_threads() -> int | None:
    """torch's thread count if torch is loaded (CPU stages pin it to 1 for reproducible floats)."""
    torch = sys.modules.get("torch")
    return int(torch.get_num_threads()) if torch is not None else None


def _restore_torch_threads(threads: int | None) -> None:
    """Give this process back the thread count it had before the build."""
    torch = sys.modules.get("torch")
    if torch is not None and threads is not None:
        torch.set_num_threads(threads)
