"""The quality stage keeps, rejects and records fakes; over-generation meets counts; no-op degradations don't count."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

from forgeset.builders.build import BuildResult, build_dataset
from forgeset.builders.executors.local_executor import LocalExecutor
from forgeset.builders.planner import plan_build
from forgeset.builders.spec import load_spec
from forgeset.detectors.watermark import decode, payload_bits
from forgeset.manifests.corpus import Corpus
from tests.conftest import SPECS, manifest_rows, tiny_spec, write_spec

SHARPNESS = "sharpness"
THRESHOLD = 2300.0  # the tiny generator's 32 px fakes score about 1900-3100: this refuses some of them


def _build(folder: Path, **overrides: Any) -> BuildResult:
    loaded = load_spec(write_spec(folder, tiny_spec(**overrides)))
    return build_dataset(loaded, folder / "out", executor=LocalExecutor())


def _rejects(out: Path) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = pq.read_table(out / "rejects.parquet").to_pylist()
    return rows


def _base_fakes(rows: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    return [row for row in rows.values() if row["label"] == "fake" and row["parent_key"] is None]


def test_record_keeps_every_fake_and_records_its_score(tmp_path: Path) -> None:
    result = _build(tmp_path, quality=[{"metric": SHARPNESS, "action": "record"}])
    rows = manifest_rows(result.out_dir)
    fakes = _base_fakes(rows)
    assert len(fakes) == 12 and result.warnings == []
    assert sorted(row["key"] for row in fakes) == [f"tiny-sd-{i:08d}" for i in range(12)]  # nothing over-planned
    assert all(set(json.loads(row["quality_scores"])) == {SHARPNESS} for row in fakes)
    assert all(row["quality_scores"] is None for row in rows.values() if row["label"] == "real")
    assert _rejects(result.out_dir) == []


def test_reject_over_generates_so_the_count_is_met(tmp_path: Path) -> None:
    quality = [{"metric": SHARPNESS, "min": THRESHOLD, "action": "reject"}]
    spec = tiny_spec(quality=quality, quality_overgenerate=3.0)
    plan = plan_build(load_spec(write_spec(tmp_path / "plan", spec)).spec, tmp_path)
    assert plan.stage_counts["tiny-sd"] == 36 and plan.spares == {"tiny-sd": 24}

    result = _build(tmp_path, quality=quality, quality_overgenerate=3.0)
    assert result.warnings == []
    fakes = _base_fakes(manifest_rows(result.out_dir))
    assert len(fakes) == 12  # the count, met with spares (keys past 11) in place of the refused ones
    scores = [json.loads(row["quality_scores"])[SHARPNESS] for row in fakes]
    assert min(scores) >= THRESHOLD
    rejects = _rejects(result.out_dir)
    assert rejects and {r["reason"] for r in rejects} == {"quality"}
    for reject in rejects:
        score = json.loads(reject["scores"])[SHARPNESS]
        assert score < THRESHOLD
        assert reject["detail"] == f"quality sharpness {score:.4g} outside [{THRESHOLD:g}, inf]"
        assert reject["source"] == "tiny-sd"
    # per shard: the first passing units in unit order; a spare is only used where a planned fake was refused
    refused = {r["key"] for r in rejects}
    assert any(int(row["key"].rsplit("-", 1)[1]) >= 12 for row in fakes)
    assert len({row["key"] for row in fakes} & refused) == 0
    assert Corpus.open(result.out_dir).index.samples == 16 + 12


def test_a_threshold_nothing_passes_reports_the_shortfall(tmp_path: Path) -> None:
    quality = [{"metric": SHARPNESS, "min": 1e9, "action": "reject"}]
    result = _build(tmp_path, quality=quality)
    assert _base_fakes(manifest_rows(result.out_dir)) == []
    assert "generator tiny-sd: 0 of 12 fakes passed quality (sharpness min 1e+09; over-generated x1.5)" in (
        result.warnings
    )
    plan = plan_build(load_spec(tmp_path / "spec.yaml").spec, tmp_path)
    assert plan.stage_counts["tiny-sd"] == 18  # ceil(12 x 1.5)
    # every planned fake is tried and refused, but for spares in shards without a planned fake to replace
    tried = set()
    for ref in plan.shards:
        fakes = [job for job in plan.shard(ref).jobs if job.generator == "tiny-sd"]
        if any(not job.spare for job in fakes):
            tried |= {job.key for job in fakes}
    rejects = _rejects(result.out_dir)
    assert {r["key"] for r in rejects} == tried and all(r["reason"] == "quality" for r in rejects)


WATERMARK_STAGE = {
    "name": "wm",
    "target": "fake",
    "fraction": 0.5,
    "mode": "replace",
    "ops": [{"type": "watermark", "payload": "per-sample", "bits": 16, "strength": 24}],
}
# Brightness by exactly 0 changes nothing, whatever the draw: every draw is a no-op.
NOOP_OPS = [{"type": "brightness", "delta": {"choices": [0.0]}}]


@pytest.fixture(scope="module")
def marked(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny corpus whose fakes are half watermarked, with no-op degradations in place and as copies."""
    perturb = [
        WATERMARK_STAGE,
        {"name": "flat", "fraction": 0.5, "mode": "replace", "ops": NOOP_OPS},
        {"name": "flatcopy", "target": "real", "fraction": 0.5, "ops": NOOP_OPS},
    ]
    return _build(tmp_path_factory.mktemp("marked"), perturb=perturb).out_dir


def test_watermark_columns_match_the_ops_and_the_pixels(marked: Path) -> None:
    rows = manifest_rows(marked)
    corpus = Corpus.open(marked)
    marked_rows = [row for row in rows.values() if row["watermark_payload"] is not None]
    assert marked_rows and all(row["label"] == "fake" for row in marked_rows)
    assert all(row["perturbation"] == "wm" for row in marked_rows)
    for row in rows.values():
        marks = [op["params"] for op in json.loads(row["ops"]) if op["op"] == "watermark"]
        if not marks:
            assert row["watermark_payload"] is None and row["watermark_bits"] is None
            continue
        assert (
            (row["watermark_payload"], row["watermark_bits"])
            == (marks[0]["payload"], marks[0]["bits"])
            == (
                marks[0]["payload"],
                16,
            )
        )
        sample = next(s for s in corpus.iter_samples() if s.key == row["key"])
        pixels = np.asarray(Image.open(io.BytesIO(sample.image)).convert("RGB"))
        bits, _ = decode(pixels, 16, 24.0)
        assert (bits == payload_bits(row["watermark_payload"], 16)).all()  # embedded at the stored size


def test_a_no_op_degradation_is_not_counted(marked: Path) -> None:
    rows = manifest_rows(marked)
    flat = [row for row in rows.values() if any(op.get("stage") == "flat" for op in json.loads(row["ops"]))]
    assert flat  # some samples drew the no-op stage in place ...
    for row in flat:
        assert "flat" not in (row["perturbation"] or "")  # ... and are not counted as degraded
        record = next(op for op in json.loads(row["ops"]) if op.get("stage") == "flat")
        assert record["noop"] is True and record["redraws"] == 3
    assert not any(key.endswith("-flatcopy") for key in rows)  # a copy that equals its parent is not written
    rejects = [r for r in _rejects(marked) if r["key"].endswith("-flatcopy")]
    assert rejects and all(r["reason"] == "unchanged" for r in rejects)
    assert all(r["detail"] == "every draw of perturbation flatcopy left it unchanged" for r in rejects)


def test_paper_features_spec_builds_offline_and_verifies(tmp_path: Path) -> None:
    from forgeset.manifests.verify import verify_corpus

    loaded = load_spec(SPECS / "paper-features.yaml")
    result = build_dataset(loaded, tmp_path / "out", executor=LocalExecutor())
    assert result.warnings == []  # over-generation met the generator's count
    verify_corpus(result.out_dir)
    rows = manifest_rows(result.out_dir)
    fakes = [row for row in rows.values() if row["label"] == "fake"]
    generated = [row for row in fakes if row["generator"] == "tiny-sd" and row["parent_key"] is None]
    assert len(generated) == 48
    assert all(
        row["prompt_base"].startswith("a photo of a ") and row["prompt"] != row["prompt_base"] for row in generated
    )
    metrics = {"clip-score", "aesthetic", "sharpness"}
    assert all(set(json.loads(row["quality_scores"])) == metrics for row in fakes)
    assert all(json.loads(row["quality_scores"])["clip-score"] >= 0.1 for row in fakes)
    marked = [row for row in fakes if row["watermark_payload"]]
    assert marked and all(len(row["watermark_payload"]) == 8 and row["watermark_bits"] == 32 for row in marked)
    assert any(row["kind"] == "inpaint" for row in fakes)
