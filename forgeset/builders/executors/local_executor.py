"""Run shards in this process, one after another: no cluster start-up, the same bytes as Ray.

For small corpora, debugging (a breakpoint works), and tests that do not test Ray itself.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from forgeset.builders.executors.base import Executor, ShardFailed, stage_batches
from forgeset.builders.planner import ShardPlan, make_stage
from forgeset.builders.shard_builder import BuildContext, ShardSummary, build_shard
from forgeset.builders.sources import RealSource
from forgeset.builders.stage_runner import run_stage
from forgeset.generators.base import Stage


class LocalExecutor(Executor):
    """Each stage's model is loaded once, on first use; shards are built in plan order."""

    def run(
        self,
        ctx: BuildContext,
        shards: list[ShardPlan],
        on_done: Callable[[ShardSummary], None],
        stop: threading.Event | None = None,
    ) -> None:
        threads = _torch_threads()
        stages: dict[str, Stage] = {}
        sources: dict[str, RealSource] = {}
        params_by_name = {params.generator_name: params for params in ctx.spec.stages}
        try:
            for shard in shards:
                if stop is not None and stop.is_set():
                    return
                try:
                    batches = []
                    for name, jobs in stage_batches(ctx, shard):
                        if name not in stages:
                            stages[name] = make_stage(params_by_name[name], ctx.base_dir, ctx.spec.image.size)
                            stages[name].setup()
                        batches.append(run_stage(ctx, stages[name], jobs, sources))
                    summary = build_shard(ctx, shard, batches)
                except OSError:
                    raise  # disk full, a file-size limit: the caller says what to do
                except Exception as err:  # named like the Ray executor's failures
                    raise ShardFailed(f"shard {shard.path} failed: {type(err).__name__}: {err}") from err
                on_done(summary)
        finally:
            _restore_torch_threads(threads)


def _torch_threads() -> int | None:
    """torch's thread count if torch is loaded (CPU stages pin it to 1 for reproducible floats)."""
    import sys

    torch = sys.modules.get("torch")
    return int(torch.get_num_threads()) if torch is not None else None


def _restore_torch_threads(threads: int | None) -> None:
    """Give this process back the thread count it had before the build."""
    import sys

    torch = sys.modules.get("torch")
    if torch is not None and threads is not None:
        torch.set_num_threads(threads)
