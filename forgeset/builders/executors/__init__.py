"""Executors that run planned shards: on Ray, in a pool of local processes, in this process, or
whichever suits the build (auto)."""

from forgeset.builders.executors.auto import choose_executor
from forgeset.builders.executors.base import Executor, ExecutorUnavailable, OutputNotShared, ShardFailed
from forgeset.builders.executors.local_executor import LocalExecutor
from forgeset.builders.executors.process_executor import ProcessExecutor
from forgeset.builders.executors.ray_executor import RayExecutor

EXECUTORS = ("auto", "ray", "local", "processes")

__all__ = [
    "EXECUTORS",
    "Executor",
    "ExecutorUnavailable",
    "LocalExecutor",
    "OutputNotShared",
    "ProcessExecutor",
    "RayExecutor",
    "ShardFailed",
    "choose_executor",
]
