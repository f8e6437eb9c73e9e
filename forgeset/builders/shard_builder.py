"""Turn one planned shard into a tar, its manifest rows, its rejects and (last) its done-marker."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pyarrow.parquet as pq

from forgeset.annotate.masks import area_fraction
from forgeset.builders.planner import Job, ShardPlan, make_source, sample_seed
from forgeset.builders.sources import RealSource
from forgeset.builders.spec import Spec
from forgeset.generators.base import SampleRejected, StageOutput
from forgeset.imaging.decode import ImageRejected, decode_image
from forgeset.imaging.encode import encode_image, encode_mask
from forgeset.imaging.policy import ImagePolicy
from forgeset.imaging.resize import fit_to_policy
from forgeset.manifests.schema import (
    MANIFEST_SCHEMA,
    REJECTS_SCHEMA,
    RejectRecord,
    SampleRecord,
    records_table,
)
from forgeset.manifests.shard_writer import ShardStats, ShardWriter
from forgeset.perturbations.adversarial import apply_attack, load_surrogates
from forgeset.perturbations.stage import apply_perturbation

STATE_DIR = ".forgeset"


@dataclass(frozen=True)
class BuildContext:
    """What every shard task needs to know about the build (small; shipped to workers)."""

    spec: Spec
    base_dir: Path
    out_dir: Path

    def shard_state(self, shard: ShardPlan) -> Path:
        """Stem of the shard's rows/rejects/marker files."""
        return self.out_dir / STATE_DIR / "shards" / shard.marker_name


@dataclass(frozen=True)
class StageBatch:
    """A model-holding stage's results for some jobs of one shard, and their shared recipe."""

    outputs: dict[str, StageOutput | SampleRejected]
    provenance: dict[str, Any]


@dataclass(frozen=True)
class ShardSummary:
    """A finished shard: its stats and how many inputs were refused."""

    shard: str
    stats: ShardStats
    rejects: int


def marker_path(ctx: BuildContext, shard: ShardPlan) -> Path:
    """The done-marker, written after the tar, rows and rejects: its presence means finished."""
    return ctx.shard_state(shard).with_suffix(".done.json")


def _record(
    job: Job,
    shard: ShardPlan,
    encoded: bytes,
    size: int,
    policy: ImagePolicy,
    ops: list[dict],
    provenance: dict[str, Any],
    facts: dict[str, Any],
    mask_area: float | None,
) -> SampleRecord:
    return SampleRecord(
        key=job.key,
        split=job.split,
        label=job.label,
        kind=job.kind,
        group=job.group,
        source=f"{job.source}:{job.item.ref}" if job.item else None,
        license=job.item.license if job.item else None,
        caption=job.item.caption if job.item else None,
        generator=job.generator,
        model=provenance.get("model"),
        revision=provenance.get("revision"),
        scheduler=provenance.get("scheduler"),
        prompt=job.prompt if job.generator else None,
        seed=job.seed,
        steps=provenance.get("steps"),
        guidance=provenance.get("guidance"),
        dtype=provenance.get("dtype"),
        diffusers_version=provenance.get("diffusers_version"),
        torch_version=provenance.get("torch_version"),
        parent_key=job.parent_key,
        perturbation=",".join(job.perturb) or None,
        strength=facts.get("strength"),
        mask_area=mask_area,
        psnr=facts.get("psnr"),
        ssim=facts.get("ssim"),
        width=size,
        height=size,
        format=policy.format,
        quality=policy.quality,
        ops=json.dumps(ops, sort_keys=True),
        sha256=hashlib.sha256(encoded).hexdigest(),
        bytes=len(encoded),
        shard=shard.path,
    )


def load_real(ctx: BuildContext, source: RealSource, job: Job) -> tuple[np.ndarray, list[dict]]:
    """A real input decoded and fitted to the real label's policy: the pixels every child starts from."""
    policy = ctx.spec.image.for_label("real")
    try:
        data = source.read(job.item)
    except OSError as err:
        raise ImageRejected("unreadable", str(err)) from None
    try:
        decoded = decode_image(data, policy.max_pixels, policy.alpha_background)
        pixels, resize_ops = fit_to_policy(decoded.pixels, policy)
    except ImageRejected:
        raise
    except Exception as err:  # a hostile input must not abort the shard; keep why
        raise ImageRejected("decode error", f"{type(err).__name__}: {err}") from None
    return pixels, decoded.ops + resize_ops


@dataclass
class _Made:
    """A sample's pixels before encoding, with what its record and its children need."""

    pixels: np.ndarray
    mask: np.ndarray | None
    ops: list[dict]
    provenance: dict[str, Any]
    facts: dict[str, Any]


def _base(
    job: Job,
    ctx: BuildContext,
    sources: dict[str, RealSource],
    outputs: dict[str, Any],
    provenance: dict[str, dict[str, Any]],
    made: dict[str, _Made],
) -> _Made:
    """The sample before its own perturbations: decoded, generated, manipulated, or its parent."""
    if job.perturb_child:
        parent = made.get(job.parent_key)  # type: ignore[arg-type]
        if parent is None:
            raise ImageRejected("parent rejected", f"{job.parent_key} could not be made")
        return _Made(parent.pixels, parent.mask, list(parent.ops), parent.provenance, dict(parent.facts))
    if job.generator is None:
        pixels, ops = load_real(ctx, sources[job.source], job)
        return _Made(pixels, None, ops, {}, {})
    result = outputs[job.key]
    if isinstance(result, SampleRejected):
        raise ImageRejected(result.reason, result.detail)
    return _Made(result.pixels, result.mask, list(result.ops), provenance[job.key], dict(result.facts))


def build_shard(ctx: BuildContext, shard: ShardPlan, batches: list[StageBatch]) -> ShardSummary:
    """Produce every sample of `shard`; a refused input becomes a reject row, never an abort.

    Base samples come first, then perturbation children, which start from their parent's final
    pixels (a lineage group never spans shards, so the parent is always here).
    """
    outputs: dict[str, Any] = {}
    provenance: dict[str, dict[str, Any]] = {}
    for batch in batches:
        outputs.update(batch.outputs)
        provenance.update(dict.fromkeys(batch.outputs, batch.provenance))
    sources: dict[str, RealSource] = {p.source_name: make_source(p, ctx.base_dir) for p in ctx.spec.real}
    stages = {stage.stage_name: stage for stage in ctx.spec.perturb}
    attacks = {
        stage.stage_name: (stage, load_surrogates(stage, ctx.base_dir, ctx.spec.image.size))
        for stage in ctx.spec.adversarial
        if any(name == stage.stage_name for job in shard.jobs for name in job.perturb)
    }
    made: dict[str, _Made] = {}
    samples: list[dict[str, bytes | str]] = []
    records: list[SampleRecord] = []
    rejects: list[RejectRecord] = []
    for job in sorted(shard.jobs, key=lambda j: (j.perturb_child, j.key)):
        try:
            sample = _base(job, ctx, sources, outputs, provenance, made)
        except ImageRejected as err:
            ref = job.item.ref if job.item else job.parent_key or ""
            rejects.append(
                RejectRecord(job.key, job.source or job.generator or "", ref, err.reason, err.detail, shard.path)
            )
            continue
        for name in job.perturb:
            seed = sample_seed(ctx.spec.seed, f"{job.key}:{name}")
            if name in attacks:
                stage, surrogates = attacks[name]
                sample.pixels, applied = apply_attack(stage, sample.pixels, seed, surrogates)
            else:
                sample.pixels, sample.mask, applied = apply_perturbation(stages[name], sample.pixels, sample.mask, seed)
            sample.ops.extend(applied)
        policy = ctx.spec.image.for_label(job.label)
        sample.pixels, resize_ops = fit_to_policy(sample.pixels, policy)
        sample.ops.extend(resize_ops)
        made[job.key] = sample
        encoded = encode_image(sample.pixels, policy)
        mask = sample.mask
        if mask is not None and mask.shape != sample.pixels.shape[:2]:
            mask = cv2.resize(mask, sample.pixels.shape[1::-1], interpolation=cv2.INTER_NEAREST)
        mask_area = round(area_fraction(mask), 6) if mask is not None else None
        record = _record(
            job, shard, encoded, policy.size, policy, sample.ops, sample.provenance, sample.facts, mask_area
        )
        records.append(record)
        members: dict[str, bytes | str] = {
            "__key__": job.key,
            policy.extension: encoded,
            "json": record.member_json(),
            "cls": record.member_cls(),
        }
        if ctx.spec.localized:
            if mask is None:
                mask = np.zeros(sample.pixels.shape[:2], dtype=np.uint8)
            members["mask.png"] = encode_mask(mask, policy.png_compression)
        samples.append(members)
    stats = ShardWriter(ctx.out_dir, shard.path).write(samples)
    state = ctx.shard_state(shard)
    state.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(
        records_table(sorted(records, key=lambda r: r.key), MANIFEST_SCHEMA), state.with_suffix(".rows.parquet")
    )
    pq.write_table(records_table(rejects, REJECTS_SCHEMA), state.with_suffix(".rejects.parquet"))
    marker = {
        "path": stats.path,
        "count": stats.count,
        "bytes": stats.bytes,
        "sha256": stats.sha256,
        "rejects": len(rejects),
    }
    done = marker_path(ctx, shard)
    done.with_suffix(".tmp").write_text(json.dumps(marker, sort_keys=True))
    done.with_suffix(".tmp").replace(done)
    return ShardSummary(shard.path, stats, len(rejects))
