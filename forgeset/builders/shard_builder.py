"""Turn one planned shard into a tar, its manifest rows, its rejects and (last) its done-marker."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq

from forgeset.builders.planner import Job, ShardPlan, make_source
from forgeset.builders.sources import RealSource
from forgeset.builders.spec import Spec
from forgeset.imaging.decode import ImageRejected, decode_image
from forgeset.imaging.encode import encode_image
from forgeset.imaging.resize import fit_to_policy
from forgeset.manifests.schema import (
    MANIFEST_SCHEMA,
    REJECTS_SCHEMA,
    RejectRecord,
    SampleRecord,
    records_table,
)
from forgeset.manifests.shard_writer import ShardStats, ShardWriter

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
class GeneratedBatch:
    """What a generator actor returns for one shard: pixels per key and the shared recipe."""

    pixels: dict[str, np.ndarray]
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
    ctx: BuildContext,
    ops: list[dict],
    provenance: dict[str, Any],
    source: str | None,
) -> SampleRecord:
    policy = ctx.spec.image
    return SampleRecord(
        key=job.key,
        split=job.split,
        label=job.label,
        kind=job.kind,
        group=job.group,
        source=source,
        license=job.item.license if job.item else None,
        caption=job.item.caption if job.item else None,
        generator=job.generator,
        model=provenance.get("model"),
        revision=provenance.get("revision"),
        scheduler=provenance.get("scheduler"),
        prompt=job.prompt,
        seed=job.seed,
        steps=provenance.get("steps"),
        guidance=provenance.get("guidance"),
        dtype=provenance.get("dtype"),
        diffusers_version=provenance.get("diffusers_version"),
        torch_version=provenance.get("torch_version"),
        parent_key=job.parent_key,
        width=size,
        height=size,
        format=policy.format,
        quality=policy.quality,
        ops=json.dumps(ops, sort_keys=True),
        sha256=hashlib.sha256(encoded).hexdigest(),
        bytes=len(encoded),
        shard=shard.path,
    )


def _real_pixels(job: Job, source: RealSource, ctx: BuildContext) -> tuple[np.ndarray, list[dict]]:
    policy = ctx.spec.image
    try:
        data = source.read(job.item)
    except OSError as err:
        raise ImageRejected("unreadable", str(err)) from None
    decoded = decode_image(data, policy.max_pixels, policy.alpha_background)
    return decoded.pixels, decoded.ops


def build_shard(ctx: BuildContext, shard: ShardPlan, generated: list[GeneratedBatch]) -> ShardSummary:
    """Produce every sample of `shard`; a refused real input becomes a reject row, never an abort."""
    policy = ctx.spec.image
    pixels_by_key: dict[str, tuple[np.ndarray, dict[str, Any]]] = {}
    for batch in generated:
        for key, pixels in batch.pixels.items():
            pixels_by_key[key] = (pixels, batch.provenance)
    sources: dict[str, RealSource] = {p.source_name: make_source(p, ctx.base_dir) for p in ctx.spec.real}
    samples: list[dict[str, bytes | str]] = []
    records: list[SampleRecord] = []
    rejects: list[RejectRecord] = []
    for job in shard.jobs:
        provenance: dict[str, Any] = {}
        source_label = None
        if job.item is not None:
            source_label = f"{job.source}:{job.item.ref}"
            try:
                pixels, ops = _real_pixels(job, sources[job.source], ctx)
                pixels, resize_ops = fit_to_policy(pixels, policy)
            except ImageRejected as err:
                rejects.append(RejectRecord(job.key, job.source, job.item.ref, err.reason, err.detail, shard.path))
                continue
            except Exception as err:  # a hostile input must not abort the shard; keep why
                rejects.append(
                    RejectRecord(
                        job.key, job.source, job.item.ref, "decode error", f"{type(err).__name__}: {err}", shard.path
                    )
                )
                continue
        else:
            pixels, provenance = pixels_by_key[job.key]
            ops = []
            pixels, resize_ops = fit_to_policy(pixels, policy)
        encoded = encode_image(pixels, policy)
        record = _record(job, shard, encoded, policy.size, ctx, ops + resize_ops, provenance, source_label)
        records.append(record)
        samples.append(
            {"__key__": job.key, policy.extension: encoded, "json": record.member_json(), "cls": record.member_cls()}
        )
    stats = ShardWriter(ctx.out_dir, shard.path).write(samples)
    state = ctx.shard_state(shard)
    state.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(records_table(records, MANIFEST_SCHEMA), state.with_suffix(".rows.parquet"))
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
