"""Run one model-holding stage on a batch of planned jobs (inside a Ray actor or in-process)."""

from __future__ import annotations

from forgeset.builders.planner import Job, make_source
from forgeset.builders.shard_builder import BuildContext, StageBatch, load_real
from forgeset.builders.sources import RealSource
from forgeset.generators import GenerationJob, ManipulationJob, Manipulator, StageOutput
from forgeset.generators.base import ParentImage, SampleRejected, Stage
from forgeset.imaging.decode import ImageRejected


def run_stage(ctx: BuildContext, stage: Stage, jobs: list[Job], sources: dict[str, RealSource]) -> StageBatch:
    """Generate (text-to-image) or manipulate (real parents decoded here) one planned batch."""
    outputs: dict[str, StageOutput | SampleRejected] = {}
    if not isinstance(stage, Manipulator):
        images = stage.generate([GenerationJob(job.key, job.seed, job.prompt) for job in jobs])
        outputs = {job.key: StageOutput(pixels=image) for job, image in zip(jobs, images, strict=True)}
        return StageBatch(outputs, stage.provenance())
    ready, parents = [], []
    for job in jobs:
        if job.source not in sources:
            sources[job.source] = make_source(
                next(p for p in ctx.spec.real if p.source_name == job.source), ctx.base_dir
            )
        try:
            pixels, _ = load_real(ctx, sources[job.source], job)
        except ImageRejected as err:
            outputs[job.key] = SampleRejected("parent rejected", f"{job.parent_key}: {err}")
            continue
        ready.append(job)
        parents.append(ParentImage(pixels, sources[job.source].read_annotation(job.item)))
    if ready:
        manipulation_jobs = [ManipulationJob(j.key, j.seed, j.prompt, j.parent_key, j.strength) for j in ready]
        for job, result in zip(ready, stage.manipulate(manipulation_jobs, parents), strict=True):
            outputs[job.key] = result
    return StageBatch(outputs, stage.provenance())
