"""Run one model-holding stage on a batch of planned jobs (inside a Ray actor or in-process)."""

from __future__ import annotations

from forgeset.builders.planner import Job, make_source
from forgeset.builders.shard_builder import BuildContext, StageBatch, load_real
from forgeset.builders.sources import RealSource
from forgeset.core.faults import checkpoint
from forgeset.core.rejection import SampleRejected
from forgeset.generators import GenerationJob, Generator, ManipulationJob, Manipulator, StageOutput
from forgeset.generators.base import ParentImage, Stage


def _source(ctx: BuildContext, sources: dict[str, RealSource], name: str) -> RealSource:
    """The real source `name`, made once per runner."""
    if name not in sources:
        sources[name] = make_source(next(p for p in ctx.spec.real if p.source_name == name), ctx.base_dir)
    return sources[name]


def run_stage(ctx: BuildContext, stage: Stage, jobs: list[Job], sources: dict[str, RealSource]) -> StageBatch:
    """Generate (text-to-image) or manipulate (real parents decoded here) one planned batch."""
    checkpoint("stage-batch")
    outputs: dict[str, StageOutput | SampleRejected] = {}
    if isinstance(stage, Generator):
        generation_jobs = [GenerationJob(job.key, job.seed or 0, job.prompt or "") for job in jobs]
        images = stage.generate(generation_jobs)
        used = stage.prompts_used(generation_jobs)
        outputs = {
            job.key: StageOutput(pixels=image, prompt_used=text)
            for job, image, text in zip(jobs, images, used, strict=True)
        }
        return StageBatch(outputs, stage.recipe())
    assert isinstance(stage, Manipulator)
    ready, parents = [], []
    for job in jobs:
        source = _source(ctx, sources, job.source or "")
        try:
            pixels, _ = load_real(ctx, source, job)
        except SampleRejected as err:
            outputs[job.key] = SampleRejected("parent rejected", f"{job.parent_key}: {err}")
            continue
        ready.append(job)
        parents.append(ParentImage(pixels, source.read_annotation(job.item) if job.item else None))
    if ready:
        manipulation_jobs = [
            ManipulationJob(j.key, j.seed or 0, j.prompt or "", j.parent_key or "", j.strength) for j in ready
        ]
        for job, result in zip(ready, stage.manipulate(manipulation_jobs, parents), strict=True):
            outputs[job.key] = result
    return StageBatch(outputs, stage.recipe())
