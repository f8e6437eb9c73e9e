"""Base of the executors: run planned shards and report each as it finishes."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable

from forgeset.builders.planner import Job, ShardPlan
from forgeset.builders.shard_builder import BuildContext, ShardSummary


class ShardFailed(RuntimeError):
    """A shard could not be built; the message names the shard and the cause."""


def stage_batches(ctx: BuildContext, shard: ShardPlan) -> list[tuple[str, list[Job]]]:
    """The planned model batches of a shard: (stage name, jobs), `batch_size` jobs at most.

    The composition of every batch is fixed by the plan, so a batch's bytes do not depend on
    which executor, actor or replica runs it.
    """
    batches = []
    for params in ctx.spec.stages:
        name = params.generator_name
        jobs = [j for j in shard.jobs if j.generator == name and not j.perturb_child]
        batches += [(name, jobs[start : start + params.batch_size]) for start in range(0, len(jobs), params.batch_size)]
    return batches


class Executor(ABC):
    """Runs shards; `on_done` is called in the driver once per finished shard."""

    @abstractmethod
    def run(self, ctx: BuildContext, shards: list[ShardPlan], on_done: Callable[[ShardSummary], None]) -> None:
        """Build every shard in `shards` (already-finished ones are not passed in)."""
