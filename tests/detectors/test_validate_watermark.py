"""validate reports the watermark detector beside the passive ones: bit accuracy and AUC per perturbation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from forgeset.builders.build import build_dataset
from forgeset.builders.executors.local_executor import LocalExecutor
from forgeset.builders.spec import load_spec
from forgeset.detectors.report import render_report
from forgeset.detectors.validate import validate_corpus
from tests.conftest import manifest_rows, tiny_spec, write_spec

KEY = "a1b2"  # a provider's fixed 16-bit key


@pytest.fixture(scope="module")
def marked(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every fake marked with one key (16 bits fit 32 px); half of all samples get a JPEG q20 copy."""
    folder = tmp_path_factory.mktemp("wm")
    spec = tiny_spec(
        splits={"train": 0.5, "val": 0.1, "test": 0.4},
        perturb=[
            {
                "name": "wm",
                "target": "fake",
                "mode": "replace",
                "ops": [{"type": "watermark", "payload": KEY, "bits": 16, "strength": 24}],
            },
            {"name": "jpg", "fraction": 0.5, "ops": [{"type": "recompress", "quality": {"choices": [20]}}]},
        ],
    )
    out = folder / "out"
    build_dataset(load_spec(write_spec(folder, spec)), out, executor=LocalExecutor())
    return out


def test_watermark_bit_accuracy_and_auc_per_perturbation(marked: Path) -> None:
    results = validate_corpus(marked, ["watermark"], seed=0)
    entry = results["detectors"]["watermark"]
    assert entry["training"]["trained"] is False
    rows = [r for r in manifest_rows(marked).values() if r["split"] == "test"]
    clean = [r for r in rows if r["perturbation"] == "wm"]
    copies = [r for r in rows if r["label"] == "fake" and r["perturbation"] == "jpg"]
    assert clean and copies and all(r["watermark_payload"] == KEY for r in clean + copies)
    marks = entry["watermark"]
    assert marks["per_perturbation"]["wm"] == {"bit_accuracy": 1.0, "n": len(clean), "auc": 1.0}
    assert marks["per_perturbation"]["jpg"]["n"] == len(copies)
    assert marks["all"]["n"] == len(clean) + len(copies)
    assert set(marks["per_degradation"]) == {"watermark", "recompress"}
    assert marks["per_degradation"]["watermark"]["16"]["bit_accuracy"] == 1.0
    # the generic per-perturbation AUC of the detector (all fakes of a perturbation vs the reals) is there too
    assert set(entry["per_perturbation"]) == {"wm", "jpg"}
    metrics = json.loads((marked / "validation" / "metrics.json").read_text())
    assert metrics["detectors"]["watermark"]["watermark"] == marks
    assert results["context"]["detectors"]["watermark"]["payload"] == KEY  # read from the corpus's marks
    html = render_report(results, "wm")
    assert "watermark: watermark on marked test fakes" in html and "last op recompress 20" in html


def test_validate_adds_the_watermark_detector_to_a_marked_corpus(marked: Path) -> None:
    results = validate_corpus(marked, ["spectrum"], epochs=1, seed=0)
    assert list(results["detectors"]) == ["spectrum", "watermark"]
    assert "watermark" not in results["detectors"]["spectrum"]
