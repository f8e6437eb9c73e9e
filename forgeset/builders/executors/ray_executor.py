"""Run shards on Ray: model hosts hold the generators' models; CPU shard tasks decode, encode and write.

Shards run in plan order through a bounded window: a shard is materialized when it enters the
window and all its model batches are sent to the hosts at once. Hosts serve calls in the order
they arrive, so the batches of shard N run before those of N+1, shard N finishes first, and an
interrupted build keeps about the share of shards it reached. A shard task receives its generated
pixels as Ray object refs, so while task N encodes and writes, the hosts generate shard N+1.

On CPUs, `workers` hosts each hold some of the stages (every stage on at least one host): torch
and diffusers are imported once per host, not once per stage and replica, which on few cores is
most of the start-up. Hosts are created in `start`, before planning, and load their models while
the driver lists the sources.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from forgeset.builders.executors.base import (
    Executor,
    ExecutorUnavailable,
    OutputNotShared,
    ShardFailed,
    planned_stages,
    stage_batches,
)
from forgeset.builders.planner import Job, Plan, ShardPlan, ShardRef, make_stage
from forgeset.builders.shard_builder import BuildContext, ShardSummary, StageBatch, build_shard
from forgeset.builders.sources import RealSource
from forgeset.builders.stage_runner import run_stage
from forgeset.generators import GeneratorParams
from forgeset.manifests.storage import is_url


class StageHost:
    """Holds the models of one or more stages for the life of the build, loaded when the host starts."""

    def __init__(self, params: list[GeneratorParams], ctx: BuildContext) -> None:
        self.ctx = ctx
        self.sources: dict[str, RealSource] = {}
        self.stages = {p.generator_name: make_stage(p, ctx.base_dir, ctx.spec.image.size) for p in params}
        self.failure: Exception | None = None
        try:
            for stage in self.stages.values():
                stage.setup()
        except Exception as err:  # reported by the first batch, with the shard it belongs to
            self.failure = err

    def ready(self) -> bool:
        """Answers once the host's models are loaded (start-up shows on the timeline)."""
        return self.failure is None

    def run(self, name: str, jobs: list[Job]) -> StageBatch:
        """Run one planned batch of stage `name` (its composition is fixed by the plan)."""
        if self.failure is not None:
            raise self.failure
        return run_stage(self.ctx, self.stages[name], jobs, self.sources)


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


def check_output_reachable(out: str, alive_nodes: int, shared_fs: bool) -> None:
    """Refuse a local-path OUT on a cluster of several nodes: a task on another node would write to its own disk."""
    if alive_nodes > 1 and (not is_url(out) or out.startswith("file://")) and not shared_fs:
        raise OutputNotShared(
            f"the Ray cluster has {alive_nodes} nodes and --out {out} is a local path: shards built on other "
            "nodes would be written to their own disks; use an object-storage URL (s3://...) or pass --shared-fs "
            "if the path is on a filesystem every node mounts"
        )


def host_assignment(stages: int, hosts: int) -> list[list[int]]:
    """For each stage, the hosts that serve it: every host gets a stage, every stage a host.

    Fewer stages than hosts: each stage is replicated on hosts h with h % stages == i. More: stage i
    lives on host i % hosts alone (its model is loaded once).
    """
    if stages >= hosts:
        return [[i % hosts] for i in range(stages)]
    return [[h for h in range(hosts) if h % stages == i] for i in range(stages)]


@dataclass
class _InFlight:
    """A shard in the window: its task, its batches not yet seen done, the jobs already reported."""

    ref: ShardRef
    slot: int
    started: float
    batches: dict[Any, int] = field(default_factory=dict)
    reported: int = 0


class RayExecutor(Executor):
    """Local Ray by default (`workers` CPUs, every service on 127.0.0.1); `address` joins a cluster."""

    def __init__(
        self,
        workers: int,
        address: str | None = None,
        stop_grace_s: float = 60.0,
        shared_fs: bool = False,
        window: int | None = None,
        task_resources: dict[str, float] | None = None,
    ) -> None:
        self.workers = max(1, workers)
        self.address = address
        self.shared_fs = shared_fs
        # Custom Ray resources every shard task asks for (--ray-resources): pins shards to the nodes
        # that offer them, e.g. writer nodes near the object store.
        self.task_resources = dict(task_resources or {})
        # Shards in flight: enough that a shard's writing overlaps the next one's generation.
        self.window = window or max(2, self.workers)
        # After a stop request, shards in flight get this long to finish before they are discarded.
        self.stop_grace_s = stop_grace_s
        self._owns_ray = False
        self._started = False
        self._hosts: list[Any] = []
        self._serving: dict[str, list[int]] = {}  # stage name -> numbers of the hosts holding its model
        self._ready: dict[Any, tuple[int, float]] = {}

    def _init_ray(self) -> None:
        if self.address is None:
            local_cluster_on_loopback()
        import ray

        if ray.is_initialized():  # a session of this process (tests, a notebook): reuse it
            return
        os.environ.setdefault("RAY_DEDUP_LOGS", "0")
        # ray.init installs its own SIGTERM handler (a stack dump and SIGABRT); keep the build's.
        handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            ray.init(
                # "local": a new cluster of our own, never one found through RAY_ADDRESS or the
                # /tmp/ray/ray_current_cluster file another process's `ray start` left behind.
                address=self.address or "local",
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
        self._owns_ray = True
        for sig, handler in handlers.items():
            if handler is not None:
                signal.signal(sig, handler)

    def start(self, ctx: BuildContext) -> None:
        """Start (or join) Ray, check OUT is reachable from every node, create the model hosts."""
        if self._started:
            return
        self._started = True
        started = time.time()
        self._init_ray()
        import ray

        if self.timeline is not None:
            self.timeline.span("ray.init", "driver", started, time.time())
        alive = sum(1 for node in ray.nodes() if node.get("Alive"))
        check_output_reachable(str(ctx.out_dir), alive, self.shared_fs)
        self._create_hosts(ctx)

    def _create_hosts(self, ctx: BuildContext) -> None:
        import ray

        gpus = int(ray.cluster_resources().get("GPU", 0))
        stages = planned_stages(ctx)
        on_gpu = [p for p in stages if gpus > 0 and p.device != "cpu"]
        on_cpu = [p for p in stages if p not in on_gpu]
        # More GPU stages than GPUs: they share, or some would never start.
        share = min(1.0, gpus / len(on_gpu)) if on_gpu else 0.0
        # A host that dies (OOM, a lost node) is restarted and its batch re-run: same bytes.
        remote = ray.remote(StageHost)
        groups: list[list[Any]] = [[p] for p in on_gpu]
        if on_cpu:
            hosts = self.workers
            members: list[list[Any]] = [[] for _ in range(hosts)]
            for params, serving in zip(on_cpu, host_assignment(len(on_cpu), hosts), strict=True):
                for host in serving:
                    members[host].append(params)
            groups += members
        for number, group in enumerate(groups):
            gpu = bool(group) and group[0] in on_gpu
            options = remote.options(num_cpus=0, num_gpus=share if gpu else 0, max_restarts=2, max_task_retries=2)
            handle: Any = options.remote(group, ctx)
            self._hosts.append(handle)
            self._ready[handle.ready.remote()] = (number, time.time())
            for params in group:
                self._serving.setdefault(params.generator_name, []).append(number)

    def run(
        self,
        ctx: BuildContext,
        plan: Plan,
        shards: Sequence[ShardRef],
        on_done: Callable[[ShardSummary], None],
        stop: threading.Event | None = None,
        on_batch: Callable[[int], None] | None = None,
    ) -> None:
        import ray

        self.start(ctx)
        # A shard task is idempotent (temporary name, rename, marker last): retry a lost worker.
        task = ray.remote(_shard_task).options(num_cpus=1, max_retries=2, resources=self.task_resources)
        turn = dict.fromkeys(self._serving, 0)
        host_free_at: dict[int, float] = {}
        batch_host: dict[Any, tuple[int, str, float]] = {}
        inflight: dict[Any, _InFlight] = {}
        owner: dict[Any, Any] = {}  # batch ref -> its shard's task ref
        free_slots = list(range(self.window))

        def submit(ref: ShardRef) -> None:
            shard = plan.shard(ref)
            entry = _InFlight(ref, free_slots.pop(0), time.time())
            refs = []
            # Each planned batch to the next host serving its stage: every host works on every
            # shard (no idle tail), and a batch's bytes do not depend on which host runs it.
            for name, jobs in stage_batches(ctx, shard):
                hosts = self._serving[name]
                number = hosts[turn[name] % len(hosts)]
                turn[name] += 1
                batch = self._hosts[number].run.remote(name, jobs)
                refs.append(batch)
                entry.batches[batch] = len(jobs)
                batch_host[batch] = (number, name, time.time())
            task_ref = task.remote(ctx, shard, *refs)
            inflight[task_ref] = entry
            owner.update(dict.fromkeys(refs, task_ref))

        queue = iter(shards)
        stopping_since: float | None = None
        try:
            while True:
                if stop is None or not stop.is_set():
                    while free_slots and (ref := next(queue, None)) is not None:
                        submit(ref)
                elif stopping_since is None:
                    stopping_since = time.monotonic()
                if not inflight:
                    break
                if stopping_since is not None and time.monotonic() - stopping_since > self.stop_grace_s:
                    break  # the rest is discarded below: no done-marker, so a resume rebuilds them
                # A timeout, so that a stop request is seen while shards are in flight; batch refs are
                # only watched (fetch_local=False): their pixels go to the shard task, not here.
                watched = [*inflight, *owner, *self._ready]
                ready, _ = ray.wait(watched, num_returns=1, timeout=0.5, fetch_local=False)
                if not ready:
                    continue
                done = ready[0]
                if done in self._ready:
                    number, created = self._ready.pop(done)
                    self._span(f"host {number} start-up", f"host {number}", created)
                    host_free_at[number] = max(host_free_at.get(number, 0.0), time.time())
                elif done in owner:
                    entry = inflight[owner.pop(done)]
                    jobs = entry.batches.pop(done)
                    self._batch_span(done, batch_host.pop(done), host_free_at, entry.ref)
                    entry.reported += jobs
                    if on_batch:
                        on_batch(jobs)
                else:
                    entry = inflight.pop(done)
                    free_slots.append(entry.slot)
                    self._finish(done, entry, owner, batch_host, host_free_at, on_batch, on_done, stop)
        finally:
            for ref in inflight:  # a failure, a second signal, the grace ran out: no task may write after this
                ray.cancel(ref, force=True)

    def _finish(
        self,
        task_ref: Any,
        entry: _InFlight,
        owner: dict[Any, Any],
        batch_host: dict[Any, tuple[int, str, float]],
        host_free_at: dict[int, float],
        on_batch: Callable[[int], None] | None,
        on_done: Callable[[ShardSummary], None],
        stop: threading.Event | None,
    ) -> None:
        import ray

        for batch in entry.batches:  # finished with the task, not yet seen by the driver
            owner.pop(batch, None)
            self._batch_span(batch, batch_host.pop(batch), host_free_at, entry.ref)
        try:
            summary = ray.get(task_ref)
        except ray.exceptions.RayError as err:
            if stop is not None and stop.is_set():
                return  # a worker interrupted along with the build: the shard is discarded
            cause = getattr(err, "cause", None) or err
            if isinstance(cause, OSError):
                raise cause from None  # disk full, a file-size limit: the caller says what to do
            raise ShardFailed(f"shard {entry.ref.path} failed: {type(cause).__name__}: {cause}") from err
        self._span(f"shard {entry.ref.path}", f"window slot {entry.slot}", entry.started)
        if on_batch and entry.ref.count > entry.reported:
            on_batch(entry.ref.count - entry.reported)
        on_done(summary)

    def _span(self, name: str, track: str, start_s: float, **args: object) -> None:
        if self.timeline is not None:
            self.timeline.span(name, track, start_s, time.time(), **args)

    def _batch_span(
        self, batch: Any, where: tuple[int, str, float], host_free_at: dict[int, float], ref: ShardRef
    ) -> None:
        """A batch on its host's track: a host serves calls in order, so it began when the host's
        previous batch ended (or when it was sent, if later)."""
        number, name, sent = where
        now = time.time()
        began = max(sent, host_free_at.get(number, sent))
        host_free_at[number] = now
        if self.timeline is not None:
            self.timeline.span(f"{name} batch", f"host {number}", began, now, shard=ref.path)

    def close(self) -> None:
        """Kill the hosts; add Ray's own task events to the timeline; stop a Ray session this build started."""
        if not self._started:
            return
        import ray

        for host in self._hosts:
            ray.kill(host)
        self._hosts, self._serving, self._ready = [], {}, {}
        if self.timeline is not None:
            try:
                self.timeline.extend(ray.timeline())
            except Exception:  # task events may be disabled on a joined cluster; the driver's view remains
                logging.getLogger(__name__).debug("no Ray timeline", exc_info=True)
        if self._owns_ray:
            ray.shutdown()
            self._owns_ray = False
        self._started = False
