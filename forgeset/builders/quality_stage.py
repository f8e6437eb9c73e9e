"""The spec's `quality` stage: score each shard's fakes after generation, keep or reject them.

Scores judge the model's output (before perturbation and resizing). Per shard and stage, fakes are
taken in unit order: one that fails a rejecting check becomes a reject row with its scores; one
that passes is kept until the stage's quota (its non-spare units in the shard, see
`planner.planned_count`) is met; the rest are surplus and written nowhere. The outcome is a pure
function of the spec and the scores, so any executor keeps the same samples.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from forgeset.builders.planner import Job
from forgeset.builders.spec import Spec
from forgeset.core.rejection import SampleRejected
from forgeset.generators.base import StageOutput
from forgeset.manifests import layout
from forgeset.manifests.storage import Storage
from forgeset.quality import QualityCheck, QualityScorer

QUALITY_REASON = "quality"
"""The reject reason of a fake a quality check refused."""

# Scorers live as long as the process (a Ray worker or the local build), so a model loads once per worker.
_SCORERS: dict[str, QualityScorer] = {}


def _scorer(check: QualityCheck) -> QualityScorer:
    key = check.scorer.model_dump_json()
    if key not in _SCORERS:
        scorer = check.build()
        scorer.setup()
        _SCORERS[key] = scorer
    return _SCORERS[key]


def _bound(value: float | None, default: float) -> str:
    return f"{value if value is not None else default:g}"


def describe(check: QualityCheck) -> str:
    """A check as messages name it: `clip-score min 0.2`, `sharpness in [50, 900]`."""
    if check.min is not None and check.max is not None:
        return f"{check.metric} in [{check.min:g}, {check.max:g}]"
    if check.min is not None:
        return f"{check.metric} min {check.min:g}"
    if check.max is not None:
        return f"{check.metric} max {check.max:g}"
    return check.metric


@dataclass
class QualityVerdicts:
    """What the quality stage decided for one shard's fakes."""

    scores: dict[str, str] = field(default_factory=dict)
    """Key -> JSON {metric: score}, for every scored fake (kept, rejected or surplus)."""
    rejected: dict[str, SampleRejected] = field(default_factory=dict)
    """Fakes a rejecting check refused (the reject row's reason and detail)."""
    surplus: set[str] = field(default_factory=set)
    """Passing spare fakes beyond their stage's quota: not written, not rejected."""


def judge_shard(spec: Spec, jobs: tuple[Job, ...], outputs: dict[str, StageOutput | SampleRejected]) -> QualityVerdicts:
    """Score the shard's made fakes with every check; decide which are kept, rejected or surplus."""
    verdicts = QualityVerdicts()
    if not spec.quality:
        return verdicts
    made = [
        job
        for job in jobs
        if job.label == "fake" and not job.perturb_child and isinstance(outputs.get(job.key), StageOutput)
    ]
    scores = _scores(spec.quality, made, outputs)
    by_stage: dict[str, list[Job]] = defaultdict(list)
    for job in jobs:
        if job.label == "fake" and not job.perturb_child and job.generator:
            by_stage[job.generator].append(job)
    for stage_jobs in by_stage.values():
        quota = sum(not job.spare for job in stage_jobs)
        kept = 0
        for job in sorted(stage_jobs, key=lambda j: j.key):  # keys are NAME-%08d: unit order
            if kept >= quota:
                if job.key in scores:
                    verdicts.surplus.add(job.key)
                continue
            if job.key not in scores:  # refused by its stage: the shard builder writes that reject
                continue
            values = scores[job.key]
            verdicts.scores[job.key] = json.dumps(values, sort_keys=True)
            failed = [
                check
                for check in spec.quality
                if check.action == "reject" and not check.passes(np.array([values[check.metric]]))[0]
            ]
            if failed:
                detail = "; ".join(
                    f"{QUALITY_REASON} {c.metric} {values[c.metric]:.4g} outside "
                    f"[{_bound(c.min, -math.inf)}, {_bound(c.max, math.inf)}]"
                    for c in failed
                )
                verdicts.rejected[job.key] = SampleRejected(QUALITY_REASON, detail)
            else:
                kept += 1
    return verdicts


def _scores(
    checks: list[QualityCheck], jobs: list[Job], outputs: dict[str, StageOutput | SampleRejected]
) -> dict[str, dict[str, float]]:
    """{key: {metric: score}} of `jobs`, scored in batches of equal-sized images."""
    by_shape: dict[tuple[int, ...], list[Job]] = defaultdict(list)
    for job in jobs:
        output = outputs[job.key]
        assert isinstance(output, StageOutput)
        by_shape[output.pixels.shape].append(job)
    out: dict[str, dict[str, float]] = {job.key: {} for job in jobs}
    for group in by_shape.values():
        pixels = np.stack([outputs[job.key].pixels for job in group])  # type: ignore[union-attr]
        prompts = [outputs[job.key].prompt_used or job.prompt or "" for job in group]  # type: ignore[union-attr]
        for check in checks:
            scorer = _scorer(check)
            values = scorer.score(pixels, prompts if scorer.needs_prompts else None)
            for job, value in zip(group, values.tolist(), strict=True):
                out[job.key][check.metric] = round(float(value), 6)
    return out


def shortfalls(spec: Spec, out: Path | str | Storage) -> list[str]:
    """One line per generate entry that kept fewer fakes than its count after quality rejects (OUT: folder or URL)."""
    if not spec.quality_rejects:
        return []
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    with Storage.of(out).open(layout.MANIFEST_NAME) as handle:
        rows = pq.read_table(handle, columns=["generator", "parent_key"])
    base = rows.filter(pc.invert(pc.is_valid(rows["parent_key"])))
    made = {entry["values"]: entry["counts"] for entry in pc.value_counts(base["generator"].drop_null()).to_pylist()}
    checks = ", ".join(describe(check) for check in spec.quality if check.action == "reject")
    return [
        f"generator {params.generator_name}: {made.get(params.generator_name, 0)} of {params.count} fakes "
        f"passed quality ({checks}; over-generated x{spec.quality_overgenerate:g})"
        for params in spec.generate
        if made.get(params.generator_name, 0) < params.count
    ]
