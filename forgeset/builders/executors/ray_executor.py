"""Run shards on Ray: generator actors hold models; CPU shard tasks decode, encode and write.

A shard task receives its generated pixels as Ray object refs, so while task N encodes and
writes, the actors already generate shard N+1: CPU work overlaps generation.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from forgeset.builders.executors.base import Executor, ExecutorUnavailable, ShardFailed, stage_batches
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


# Ray binds a local cluster's services (GCS, raylet, object manager, agents, workers) to the
# machine's network address unless its node address is loopback, and this variable, read when
# `ray` is imported, is what makes Ray pick 127.0.0.1 on Linux (the macOS/Windows behaviour).
# `ray.init(_node_ip_address="127.0.0.1")` does not: Ray rewrites it to the external address.
LOOPBACK_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"


def local_cluster_on_loopback() -> None:
    """Make a local Ray cluster started from this process listen on 127.0.0.1 only.

    Set before `import ray` (workers inherit it); if Ray is already imported, its constant is
    also switched. A cluster joined with --ray-address is left alone: that network is the user's.
    """
    os.environ[LOOPBACK_ENV] = "0"
    from ray._private import ray_constants

    ray_constants.ENABLE_RAY_CLUSTER = False


class RayExecutor(Executor):
    """Local Ray by default (`workers` CPUs, every service on 127.0.0.1); `address` joins a cluster."""

    def __init__(self, workers: int, address: str | None = None, stop_grace_s: float = 60.0) -> None:
        self.workers = max(1, workers)
        self.address = address
        # After a stop request, shards in flight get this long to finish before they are discarded.
        self.stop_grace_s = stop_grace_s

    def _init_ray(self) -> bool:
        if self.address is None:
            local_cluster_on_loopback()
        import ray

        if ray.is_initialized():
            return False
        os.environ.setdefault("RAY_DEDUP_LOGS", "0")
        # ray.init installs its own SIGTERM handler (a stack dump and SIGABRT); keep the build's.
        handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            ray.init(
                address=self.address,
                num_cpus=None if self.address else self.workers,
                include_dashboard=False,
                log_to_driver=False,
                logging_level=logging.ERROR,
            )
        except Exception as err:  # Ray raises several types (ConnectionError, RuntimeError, ...)
            where = f"the cluster at {self.address}" if self.address else "a local cluster"
            raise ExecutorUnavailable(
                f"Ray could not start {where} ({type(err).__name__}: {err}); check /tmp/ray/session_latest/logs, "
                "or build in this process with --executor local"
            ) from None
        for sig, handler in handlers.items():
            if handler is not None:
                signal.signal(sig, handler)
        return True

    def _actors(self, ctx: BuildContext, shards: list[ShardPlan]) -> dict[str, list[Any]]:
        import ray

        gpus = int(ray.cluster_resources().get("GPU", 0))
        plans: list[tuple[Any, int, bool]] = []
        for params in ctx.spec.stages:
            name = params.generator_name
            needed = sum(1 for shard in shards if any(job.generator == name for job in shard.jobs))
            if not needed:
                continue
            on_gpu = gpus > 0 and params.device != "cpu"
            plans.append((params, max(1, min(needed, gpus if on_gpu else self.workers)), on_gpu))
        # More GPU replicas than GPUs (several stages, one GPU): they share, or some would never start.
        gpu_replicas = sum(replicas for _, replicas, on_gpu in plans if on_gpu)
        share = min(1.0, gpus / gpu_replicas) if gpu_replicas else 0.0
        actors: dict[str, list[Any]] = {}
        for params, replicas, on_gpu in plans:
            # A replica that dies (OOM, a lost node) is restarted and its batch re-run: same bytes.
            remote = ray.remote(StageActor).options(
                num_cpus=0, num_gpus=share if on_gpu else 0, max_restarts=2, max_task_retries=2
            )
            actors[params.generator_name] = [remote.remote(params, ctx) for _ in range(replicas)]
        return actors

    def run(
        self,
        ctx: BuildContext,
        shards: list[ShardPlan],
        on_done: Callable[[ShardSummary], None],
        stop: threading.Event | None = None,
    ) -> None:
        import ray

        owns_ray = self._init_ray()
        actors: dict[str, list[Any]] = {}
        pending: dict[Any, ShardPlan] = {}
        try:
            actors = self._actors(ctx, shards)
            # A shard task is idempotent (temporary name, rename, marker last): retry a lost worker.
            task = ray.remote(_shard_task).options(num_cpus=1, max_retries=2)
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
            window = 2 * self.workers
            stopping_since: float | None = None
            while True:
                if stop is None or not stop.is_set():
                    while len(pending) < window and (shard := next(queue, None)) is not None:
                        pending[submit(shard)] = shard
                elif stopping_since is None:
                    stopping_since = time.monotonic()
                if not pending:
                    break
                if stopping_since is not None and time.monotonic() - stopping_since > self.stop_grace_s:
                    for ref in pending:  # discarded: no done-marker, so a resume rebuilds them
                        ray.cancel(ref, force=True)
                    break
                # A timeout, so that a stop request is seen while shards are in flight.
                ready, _ = ray.wait(list(pending), num_returns=1, timeout=0.5)
                if not ready:
                    continue
                shard = pending.pop(ready[0])
                try:
                    summary = ray.get(ready[0])
                except ray.exceptions.RayError as err:
                    if stop is not None and stop.is_set():
                        continue  # a worker interrupted along with the build: the shard is discarded
                    cause = getattr(err, "cause", None) or err
                    if isinstance(cause, OSError):
                        raise cause from None  # disk full, a file-size limit: the caller says what to do
                    raise ShardFailed(f"shard {shard.path} failed: {type(cause).__name__}: {cause}") from err
                on_done(summary)
        finally:
            for ref in pending:  # a failure or a second signal: no task may write into OUT after this
                ray.cancel(ref, force=True)
            for replicas in actors.values():
                for actor in replicas:
                    ray.kill(actor)
            if owns_ray:
                ray.shutdown()
