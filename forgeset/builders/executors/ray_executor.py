"""Run shards on Ray: generator actors hold models; CPU shard tasks decode, encode and write.

A shard task receives its generated pixels as Ray object refs, so while task N encodes and
writes, the actors already generate shard N+1: CPU work overlaps generation.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from typing import Any

from forgeset.builders.executors.base import Executor, ShardFailed, stage_batches
from forgeset.builders.planner import Job, ShardPlan, make_stage
from forgeset.builders.shard_builder import BuildContext, ShardSummary, StageBatch, build_shard
from forgeset.builders.sources import RealSource
from forgeset.builders.stage_runner import run_stage
from forgeset.generators import GeneratorParams


class StageActor:
    """Holds one generator's or manipulation's model for the life of the build (loaded on first use)."""

    def __init__(self, params: GeneratorParams, ctx: BuildContext) -> None:
        self.ctx = ctx
        self.stage = make_stage(params, ctx.base_dir, ctx.spec.image.size)
        self.sources: dict[str, RealSource] = {}
        self.loaded = False

    def run(self, jobs: list[Job]) -> StageBatch:
        """Run one planned batch (its composition is fixed by the plan)."""
        if not self.loaded:
            self.stage.setup()
            self.loaded = True
        return run_stage(self.ctx, self.stage, jobs, self.sources)


def _shard_task(ctx: BuildContext, shard: ShardPlan, *batches: StageBatch) -> ShardSummary:
    return build_shard(ctx, shard, list(batches))


class RayExecutor(Executor):
    """Local Ray by default (`workers` CPUs); `address` joins an existing cluster."""

    def __init__(self, workers: int, address: str | None = None) -> None:
        self.workers = max(1, workers)
        self.address = address

    def _init_ray(self) -> bool:
        import ray

        if ray.is_initialized():
            return False
        os.environ.setdefault("RAY_DEDUP_LOGS", "0")
        ray.init(
            address=self.address,
            num_cpus=None if self.address else self.workers,
            include_dashboard=False,
            log_to_driver=False,
            logging_level=logging.ERROR,
        )
        return True

    def _actors(self, ctx: BuildContext, shards: list[ShardPlan]) -> dict[str, list[Any]]:
        import ray

        gpus = int(ray.cluster_resources().get("GPU", 0))
        actors: dict[str, list[Any]] = {}
        for params in ctx.spec.stages:
            name = params.generator_name
            needed = sum(1 for shard in shards if any(job.generator == name for job in shard.jobs))
            if not needed:
                continue
            on_gpu = gpus > 0 and params.device != "cpu"
            replicas = max(1, min(needed, gpus if on_gpu else self.workers))
            remote = ray.remote(StageActor).options(num_cpus=0, num_gpus=1 if on_gpu else 0)
            actors[name] = [remote.remote(params, ctx) for _ in range(replicas)]
        return actors

    def run(self, ctx: BuildContext, shards: list[ShardPlan], on_done: Callable[[ShardSummary], None]) -> None:
        import ray

        owns_ray = self._init_ray()
        actors: dict[str, list[Any]] = {}
        try:
            actors = self._actors(ctx, shards)
            task = ray.remote(_shard_task).options(num_cpus=1, max_retries=0)
            turn = dict.fromkeys(actors, 0)

            def submit(shard: ShardPlan) -> Any:
                # One actor call per planned batch, dealt across replicas: every replica works on
                # every shard (no idle tail), and a batch's bytes do not depend on which one runs it.
                refs = []
                for name, jobs in stage_batches(ctx, shard):
                    replicas = actors[name]
                    refs.append(replicas[turn[name] % len(replicas)].run.remote(jobs))
                    turn[name] += 1
                return task.remote(ctx, shard, *refs)

            queue: Iterator[ShardPlan] = iter(shards)
            pending: dict[Any, ShardPlan] = {}
            window = 2 * self.workers
            while True:
                for shard in queue:
                    pending[submit(shard)] = shard
                    if len(pending) >= window:
                        break
                if not pending:
                    break
                ready, _ = ray.wait(list(pending), num_returns=1)
                shard = pending.pop(ready[0])
                try:
                    summary = ray.get(ready[0])
                except ray.exceptions.RayError as err:
                    cause = getattr(err, "cause", None) or err
                    raise ShardFailed(f"shard {shard.path} failed: {type(cause).__name__}: {cause}") from err
                on_done(summary)
        finally:
            for replicas in actors.values():
                for actor in replicas:
                    ray.kill(actor)
            if owns_ray:
                ray.shutdown()
