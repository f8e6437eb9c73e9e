"""Base of the executors: run planned shards and report each as it finishes."""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Callable

from forgeset.builders.planner import Job, ShardPlan
from forgeset.builders.shard_builder import BuildContext, ShardSummary


class ShardFailed(RuntimeError):
    """A shard could not be built; the message names the shard and the cause."""


class ExecutorUnavailable(RuntimeError):
    """The executor could not start (e.g. Ray); the message says what to try."""


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


class Executor(ABC):
    """Runs shards; `on_done` is called in the driver once per finished shard."""

    @abstractmethod
    def run(
        self,
        ctx: BuildContext,
        shards: list[ShardPlan],
        on_done: Callable[[ShardSummary], None],
        stop: threading.Event | None = None,
    ) -> None:
        """Build every shard in `shards` (already-finished ones are not passed in).

        Once `stop` is set, start no further shard; shards in flight may finish or be discarded
        (a discarded shard leaves no done-marker, so a resume rebuilds it).
        """
