"""Base of the executors: run planned shards and report each as it finishes."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable

from forgeset.builders.planner import ShardPlan
from forgeset.builders.shard_builder import BuildContext, ShardSummary


class ShardFailed(RuntimeError):
    """A shard could not be built; the message names the shard and the cause."""


class Executor(ABC):
    """Runs shards; `on_done` is called in the driver once per finished shard."""

    @abstractmethod
    def run(self, ctx: BuildContext, shards: list[ShardPlan], on_done: Callable[[ShardSummary], None]) -> None:
        """Build every shard in `shards` (already-finished ones are not passed in)."""
