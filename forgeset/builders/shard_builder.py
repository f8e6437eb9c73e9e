"""Turn one planned shard into a tar, its manifest rows, its rejects and (last) its done-marker."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from forgeset.builders.planner import Job, ShardPlan, ShardRef, make_source
from forgeset.builders.quality_stage import judge_shard
from forgeset.builders.sources import RealSource
from forgeset.builders.spec import Spec
from forgeset.core.rejection import SampleRejected
from forgeset.detectors.watermark import NAME as WATERMARK
from forgeset.generators.base import StageOutput
from forgeset.generators.masks import area_fraction
from forgeset.imaging.decode import decode_image
from forgeset.imaging.encode import encode_image, encode_mask
from forgeset.imaging.policy import ImagePolicy
from forgeset.imaging.resize import fit_to_policy
from forgeset.manifests import layout
from forgeset.manifests.annotations import annotation_member, mask_regions
from forgeset.manifests.schema import RejectRecord, SampleRecord, StageRecipe
from forgeset.manifests.shard_writer import ShardMarker, ShardWriter
from forgeset.manifests.storage import Storage
from forgeset.perturbations.adversarial import apply_attack, load_surrogates
from forgeset.perturbations.stage import PerturbStageParams, apply_perturbation, is_degraded


@dataclass(frozen=True)
class BuildContext:
    """What every shard task needs to know about the build (small; shipped to workers)."""

    spec: Spec
    base_dir: Path
    out_dir: str
    """OUT: a local folder or an fsspec URL (s3://...), as a string: a Path would mangle a URL."""

    @property
    def storage(self) -> Storage:
        """OUT's storage, built on use (cheap: fsspec keeps its filesystem instances)."""
        return Storage.of(self.out_dir)

    def shard_state(self, shard: ShardPlan | ShardRef) -> str:
        """Stem of the shard's rows/rejects/marker files, relative to OUT (.forgeset/shards/train-00003)."""
        return layout.Layout(Path()).shard_state(shard.split, shard.index).as_posix()


@dataclass(frozen=True)
class StageBatch:
    """A model-holding stage's results for some jobs of one shard, and the recipe they share."""

    outputs: dict[str, StageOutput | SampleRejected]
    recipe: StageRecipe


@dataclass(frozen=True)
class ShardSummary:
    """A finished shard: its done-marker (path, count, bytes, sha256, rejects)."""

    shard: str
    marker: ShardMarker


def _watermark(ops: list[dict]) -> dict[str, Any]:
    """The params of the sample's last `watermark` op record, or {} when it carries no mark."""
    marks = [record["params"] for record in ops if record.get("op") == WATERMARK]
    return marks[-1] if marks else {}


def _record(
    job: Job, shard: ShardPlan, encoded: bytes, policy: ImagePolicy, sample: _Made, mask_area: float | None
) -> SampleRecord:
    recipe, output = sample.recipe, sample.output
    mark = _watermark(sample.ops)
    return SampleRecord(
        key=job.key,
        split=job.split,
        label=job.label,
        kind=job.kind,
        group=job.group,
        source=f"{job.source}:{job.item.ref}" if job.item else None,
        license=job.item.license if job.item else recipe.license,
        caption=job.item.caption if job.item else None,
        generator=job.generator,
        model=recipe.model,
        revision=recipe.revision,
        pipeline=recipe.pipeline,
        scheduler=recipe.scheduler,
        scheduler_config=recipe.scheduler_config,
        prompt=job.prompt if job.generator else None,
        prompt_used=output.prompt_used,
        prompt_base=job.prompt_base if job.generator else None,
        seed=job.seed,
        steps=recipe.steps,
        guidance=recipe.guidance,
        dtype=recipe.dtype,
        device=recipe.device,
        gen_size=recipe.gen_size,
        diffusers_version=recipe.diffusers_version,
        torch_version=recipe.torch_version,
        parent_key=job.parent_key,
        perturbation=",".join(sample.perturb) or None,
        perturb_seeds=",".join(str(seed) for seed in sample.perturb_seeds) or None,
        strength=output.strength,
        mask_area=mask_area,
        psnr=output.psnr,
        ssim=output.ssim,
        quality_scores=sample.scores,
        watermark_payload=mark.get("payload"),
        watermark_bits=mark.get("bits"),
        regions=None,  # counted from the mask by build_shard
        width=policy.size,
        height=policy.size,
        format=policy.format,
        quality=policy.quality,
        ops=json.dumps(sample.ops, sort_keys=True),
        sha256=hashlib.sha256(encoded).hexdigest(),
        bytes=len(encoded),
        shard=shard.path,
    )


def load_real(ctx: BuildContext, source: RealSource, job: Job) -> tuple[np.ndarray, list[dict]]:
    """A real input decoded and fitted to the real label's policy: the pixels every child starts from."""
    policy = ctx.spec.image.for_label("real")
    if job.item is None:
        raise SampleRejected("no input", f"{job.key} has no real item")
    try:
        data = source.read(job.item)
    except OSError as err:
        raise SampleRejected("unreadable", str(err)) from None
    try:
        decoded = decode_image(data, policy.max_pixels, policy.alpha_background)
        pixels, resize_ops = fit_to_policy(decoded.pixels, policy)
    except SampleRejected:
        raise
    except Exception as err:  # a hostile input must not abort the shard; keep why
        raise SampleRejected("decode error", f"{type(err).__name__}: {err}") from None
    return pixels, decoded.ops + resize_ops


@dataclass
class _Made:
    """A sample's pixels before encoding, with what its record and its children need."""

    pixels: np.ndarray
    mask: np.ndarray | None
    ops: list[dict]
    recipe: StageRecipe
    output: StageOutput
    scores: str | None = None
    """JSON {metric: score} of the quality checks (a child keeps its parent's)."""
    perturb: list[str] = field(default_factory=list)
    """The stages that changed it (a stage whose every op was a no-op is left out), and their seeds."""
    perturb_seeds: list[int] = field(default_factory=list)


_REAL = StageRecipe()


def _base(
    job: Job,
    ctx: BuildContext,
    sources: dict[str, RealSource],
    outputs: dict[str, StageOutput | SampleRejected],
    recipes: dict[str, StageRecipe],
    made: dict[str, _Made],
    scores: dict[str, str],
) -> _Made:
    """The sample before its own perturbations: decoded, generated, manipulated, or its parent."""
    if job.perturb_child:
        parent = made.get(job.parent_key or "")
        if parent is None:
            raise SampleRejected("parent rejected", f"{job.parent_key} could not be made")
        return replace(parent, ops=list(parent.ops), perturb=[], perturb_seeds=[])
    if job.generator is None:
        pixels, ops = load_real(ctx, sources[job.source or ""], job)
        return _Made(pixels, None, ops, _REAL, StageOutput(pixels=pixels))
    result = outputs[job.key]
    if isinstance(result, SampleRejected):
        raise result
    return _Made(result.pixels, result.mask, list(result.ops), recipes[job.key], result, scores.get(job.key))


def _marks(stage: PerturbStageParams) -> bool:
    return any(op.type == WATERMARK for op in stage.ops)


def build_shard(ctx: BuildContext, shard: ShardPlan, batches: list[StageBatch]) -> ShardSummary:
    """Produce every sample of `shard`; a refused input becomes a reject row, never an abort.

    Base samples come first, then perturbation children, which start from their parent's final
    pixels (a lineage group never spans shards, so the parent is always here). Fakes pass the
    spec's quality checks first (`judge_shard`): refused ones are reject rows with their scores,
    surplus over-generated ones and their children are not written. A perturbation that changed
    nothing is not counted: a `replace` sample is written unperturbed, a `new` copy is a reject row.
    A stage that embeds a watermark gets the pixels already fitted to the policy, so the mark is
    not resized away.
    """
    outputs: dict[str, StageOutput | SampleRejected] = {}
    recipes: dict[str, StageRecipe] = {}
    for batch in batches:
        outputs.update(batch.outputs)
        recipes.update(dict.fromkeys(batch.outputs, batch.recipe))
    sources: dict[str, RealSource] = {p.source_name: make_source(p, ctx.base_dir) for p in ctx.spec.real}
    stages = {stage.stage_name: stage for stage in ctx.spec.perturb}
    attacks = {
        stage.stage_name: (stage, load_surrogates(stage, ctx.base_dir, ctx.spec.image.size))
        for stage in ctx.spec.adversarial
        if any(name == stage.stage_name for job in shard.jobs for name in job.perturb)
    }
    verdicts = judge_shard(ctx.spec, shard.jobs, outputs)
    outputs.update(verdicts.rejected)
    made: dict[str, _Made] = {}
    samples: list[dict[str, Any]] = []
    records: list[SampleRecord] = []
    rejects: list[RejectRecord] = []
    localized = ctx.spec.localized
    for job in sorted(shard.jobs, key=lambda j: (j.perturb_child, j.key)):
        if job.key in verdicts.surplus or (job.perturb_child and job.parent_key in verdicts.surplus):
            continue
        policy = ctx.spec.image.for_label(job.label)
        try:
            sample = _base(job, ctx, sources, outputs, recipes, made, verdicts.scores)
            for name, seed in zip(job.perturb, job.perturb_seeds, strict=True):
                if name in attacks:
                    stage, surrogates = attacks[name]
                    sample.pixels, applied = apply_attack(stage, sample.pixels, seed, surrogates)
                else:
                    if _marks(stages[name]):
                        sample.pixels, resize_ops = fit_to_policy(sample.pixels, policy)
                        sample.ops.extend(resize_ops)
                    sample.pixels, sample.mask, applied = apply_perturbation(
                        stages[name], sample.pixels, sample.mask, seed
                    )
                    if not is_degraded(applied):
                        sample.ops.extend(applied)
                        if job.perturb_child:
                            raise SampleRejected("unchanged", f"every draw of perturbation {name} left it unchanged")
                        continue
                sample.ops.extend(applied)
                sample.perturb.append(name)
                sample.perturb_seeds.append(seed)
        except SampleRejected as err:
            ref = job.item.ref if job.item else job.parent_key or ""
            source = job.source or job.generator or ""
            scores = verdicts.scores.get(job.key, "")
            rejects.append(RejectRecord(job.key, source, ref, err.reason, err.detail, shard.path, scores))
            continue
        sample.pixels, resize_ops = fit_to_policy(sample.pixels, policy)
        sample.ops.extend(resize_ops)
        made[job.key] = sample
        encoded = encode_image(sample.pixels, policy)
        mask = sample.mask
        if mask is not None and mask.shape != sample.pixels.shape[:2]:
            mask = cv2.resize(mask, sample.pixels.shape[1::-1], interpolation=cv2.INTER_NEAREST)
        # The area of the mask as stored: after geometric perturbations and the final resize.
        mask_area = round(area_fraction(mask), 6) if mask is not None else None
        record = _record(job, shard, encoded, policy, sample, mask_area)
        # The mask's connected components as boxes (KEY.ann.json): annotators start from them in FiftyOne.
        regions = mask_regions(mask, job.kind) if mask is not None else []
        if regions:
            record = replace(record, regions=len(regions))
        records.append(record)
        members: dict[str, Any] = {
            "__key__": job.key,
            layout.image_member(policy.format): encoded,
            layout.JSON_MEMBER: record.member_json(),
            layout.CLS_MEMBER: record.member_cls(),
        }
        if localized:
            if mask is None:
                mask = np.zeros(sample.pixels.shape[:2], dtype=np.uint8)
            members[layout.MASK_MEMBER] = encode_mask(mask, policy.png_compression)
        if regions:
            members[layout.ANN_MEMBER] = annotation_member(record.width, record.height, regions)
        samples.append(members)
    marker = ShardWriter(ctx.out_dir, shard.split, shard.index).finish(samples, records, rejects)
    return ShardSummary(shard.path, marker)
