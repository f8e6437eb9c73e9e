"""Base of the executors: run planned shards in plan order and report batches and shards as they finish."""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Any

from forgeset.builders.executors.timeline import Timeline
from forgeset.builders.planner import Job, Plan, ShardPlan, ShardRef
from forgeset.builders.shard_builder import BuildContext, ShardSummary


class ShardFailed(RuntimeError):
    """A shard could not be built; the message names the shard and the cause."""


class ExecutorUnavailable(RuntimeError):
    """The executor could not start (e.g. Ray); the message says what to try."""


class OutputNotShared(RuntimeError):
    """OUT is a local path but shard tasks may run on other machines of the cluster."""


def stage_batches(ctx: BuildContext, shard: ShardPlan) -> list[tuple[str, list[Job]]]:
    """The planned model batches of a shard: (stage name, jobs), `batch_size` jobs at most.

    The composition of every batch is fixed by the plan, so a batch's bytes do not depend on
    which executor, actor or replica runs it.
    """
    batches = []
    for params in ctx.spec.stages:
        name = params.generator_name
        jobs = [j for j in shard.jobs if j.generator == name and not j.perturb_child]
        size = params.planned_batch_size
        batches += [(name, jobs[start : start + size]) for start in range(0, len(jobs), size)]
    return batches


def planned_stages(ctx: BuildContext) -> list[Any]:
    """The stages the spec asks samples of (known before planning, so models can load meanwhile)."""
    return [params for params in ctx.spec.stages if getattr(params, "count", 1) > 0]


class Executor(ABC):
    """Runs shards; `on_batch` and `on_done` are called in the driver as work finishes.

    `start` may begin slow set-up (a cluster, model loading) while the driver plans; `close`
    releases what `start` or `run` took. `timeline`, when set, receives spans of the work.
    """

    timeline: Timeline | None = None

    def start(self, ctx: BuildContext) -> None:  # noqa: B027 - optional hook, nothing to start by default
        """Begin set-up that does not need the plan (called before planning)."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release workers and sessions taken by `start` or `run`."""

    @abstractmethod
    def run(
        self,
        ctx: BuildContext,
        plan: Plan,
        shards: Sequence[ShardRef],
        on_done: Callable[[ShardSummary], None],
        stop: threading.Event | None = None,
        on_batch: Callable[[int], None] | None = None,
    ) -> None:
        """Build every shard in `shards` (already-finished ones are not passed in), in plan order.

        A shard is materialized with `plan.shard(ref)` only when it is started. `on_batch(n)` says
        n more planned jobs are done: once per model batch, and once per finished shard for the
        rest of its jobs (reals, perturbation children), so the calls of a shard add up to
        `ref.count`. Once `stop` is set, start no further shard; shards in flight may finish or
        be discarded (a discarded shard leaves no done-marker, so a resume rebuilds it).
        """
