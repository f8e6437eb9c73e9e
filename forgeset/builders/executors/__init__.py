"""Executors that run planned shards: on Ray (default), or in this process."""

from forgeset.builders.executors.base import Executor, ExecutorUnavailable, ShardFailed
from forgeset.builders.executors.local_executor import LocalExecutor
from forgeset.builders.executors.ray_executor import RayExecutor

EXECUTORS = ("ray", "local")

__all__ = ["EXECUTORS", "Executor", "ExecutorUnavailable", "LocalExecutor", "RayExecutor", "ShardFailed"]
