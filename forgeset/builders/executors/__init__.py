"""Executors that run planned shards."""

from forgeset.builders.executors.base import Executor, ShardFailed
from forgeset.builders.executors.ray_executor import RayExecutor

__all__ = ["Executor", "RayExecutor", "ShardFailed"]
