"""`--executor auto`: a pool of local processes for small builds (in this process with one
worker), on Ray otherwise.

Ray's fixed cost (cluster start-up, a torch import and model load per host) is paid back only
when the model work spread over the workers saves more than it; below that a process pool keeps
every core busy without it. The work is estimated from the spec alone (counts, steps, image
size), so the choice is made before planning and the workers can start while the sources are
listed.
"""

from __future__ import annotations

import os
from typing import Any

from forgeset.builders.executors.base import Executor
from forgeset.builders.executors.local_executor import LocalExecutor
from forgeset.builders.executors.process_executor import ProcessExecutor
from forgeset.builders.executors.ray_executor import RayExecutor

# Work units: one denoising step of one 64x64 image (about 6 ms on one core of a laptop-class CPU
# with the builtin tiny models). Below this, a process pool beats Ray on 2 cores: Ray's extra
# start-up (about 10 s there: ray.init and a host per worker) outweighs what it adds. Measured
# with specs/quickstart.yaml (5,760 units); see bench/RESULTS.md.
LOCAL_WORK_LIMIT = 8000


def estimated_model_work(spec: Any) -> float:
    """Model work of a spec in 64 px denoising steps (a model without steps counts one)."""
    scale = (spec.image.size / 64) ** 2
    return sum(params.count * max(1, getattr(params, "steps", None) or 1) * scale for params in spec.stages)


def choose_executor(spec: Any, workers: int | None, address: str | None = None, shared_fs: bool = False) -> Executor:
    """LocalExecutor for one worker, ProcessExecutor for little model work, RayExecutor for a
    cluster or more work."""
    workers = workers or os.cpu_count() or 1
    if address is None and workers == 1:
        return LocalExecutor()
    if address is None and estimated_model_work(spec) <= LOCAL_WORK_LIMIT:
        return ProcessExecutor(workers)
    return RayExecutor(workers, address, shared_fs=shared_fs)
