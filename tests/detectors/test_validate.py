"""`forgeset validate` on the forensics mix: metrics, protocols, checkpoints, and the HTML report."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from forgeset.cli import app
from forgeset.detectors import load_detector
from forgeset.detectors.data import load_corpus
from forgeset.detectors.metrics import auc_interval, detection_metrics, localization_scores
from forgeset.detectors.validate import validate_corpus
from tests.conftest import chromium_flags

# Screenshots kept for a person (and CI) to look at: FORGESET_TEST_ARTIFACTS, or .test-artifacts/.
ARTIFACTS = Path(os.environ.get("FORGESET_TEST_ARTIFACTS") or Path(__file__).resolve().parents[2] / ".test-artifacts")


def test_every_detector_reports_test_and_ood_metrics(validated_mix: dict[str, Any], forensics_mix: Path) -> None:
    assert set(validated_mix["detectors"]) == {"spectrum", "cnn", "npr"}
    for name, entry in validated_mix["detectors"].items():
        for split in ("test", "test_ood"):
            assert {"auc", "ap", "accuracy", "real_accuracy", "fake_accuracy", "eer"} <= set(entry[split])
            assert entry[split]["auc"] is not None, (name, split)
        # Trained on the tiny generator's fakes, each detector clearly beats chance on them.
        assert entry["per_generator"]["tiny-sd"]["auc"] > 0.8, name
        assert set(entry["per_kind"]) == {"inpaint", "launder", "text2image"}
        assert "imagedetectbench" in entry["per_perturbation"]
    assert "localization" in validated_mix["detectors"]["npr"]
    assert "localization" not in validated_mix["detectors"]["cnn"]
    saved = json.loads((forensics_mix / "validation" / "metrics.json").read_text())
    assert saved["detectors"]["cnn"]["test"] == validated_mix["detectors"]["cnn"]["test"]


def test_counts_intervals_context_and_missing_generators(validated_mix: dict[str, Any], forensics_mix: Path) -> None:
    from forgeset.manifests.corpus import Corpus

    corpus = Corpus.open(forensics_mix)
    context = validated_mix["context"]
    assert context["spec_sha256"] == corpus.index.spec_sha256 and context["seed"] == 0
    assert set(context["detectors"]) == {"spectrum", "cnn", "npr"} and context["detectors"]["cnn"]["epochs"] == 6
    assert context["samples"] == {s: sum(sh.count for sh in corpus.shards(s)) for s in corpus.splits}
    test_rows = [r for r in corpus.rows if r["split"] == "test"]
    for entry in validated_mix["detectors"].values():
        test = entry["test"]
        assert test["n_real"] == sum(r["label"] == "real" for r in test_rows)
        assert test["n_fake"] == sum(r["label"] == "fake" for r in test_rows)
        assert test["auc_ci"][0] <= test["auc"] <= test["auc_ci"][1]
        assert test["few"] == (test["n_real"] < 30 or test["n_fake"] < 30)
        # The held-out generator has no test samples: listed, not dropped.
        assert entry["per_generator"]["tiny-sd-euler"]["missing"] == "no test samples (in: test_ood)"
        assert entry["robustness"]["clean_n"] == sum(not r["perturbation"] for r in test_rows)


def test_validate_is_deterministic_for_a_seed(tiny_corpus: Path, tmp_path: Path) -> None:
    runs = []
    for copy in ("a", "b"):
        out = tmp_path / copy
        shutil.copytree(tiny_corpus, out)
        results = validate_corpus(out, ["cnn"], epochs=2, seed=3)
        results["context"].pop("date")
        runs.append(results)
    assert runs[0] == runs[1]
    assert runs[0]["detectors"]["cnn"]["training"]["epochs"][1]["loss"] > 0


def test_cross_generator_matrix_and_robustness_curves(validated_mix: dict[str, Any]) -> None:
    matrix = validated_mix["cross_generator"]
    assert matrix["detector"] == "spectrum"
    assert {"tiny-sd", "telea-boxes", "tiny-vae-roundtrip"} <= set(matrix["auc"])
    assert all("tiny-sd-euler" in row for row in matrix["auc"].values())  # held-out generator as a target
    robustness = validated_mix["detectors"]["cnn"]["robustness"]
    assert robustness["ops"] and robustness["clean_accuracy"] is not None
    for levels in robustness["ops"].values():
        assert all(0.0 <= point["accuracy"] <= 1.0 and point["n"] >= 1 for point in levels.values())


def test_checkpoints_reload_to_the_same_scores(validated_mix: dict[str, Any], forensics_mix: Path) -> None:
    test = load_corpus(forensics_mix)["test"]
    for name, checkpoint in validated_mix["checkpoints"].items():
        detector = load_detector(forensics_mix / checkpoint["path"])
        scores = detector.scores(test.images)
        metrics = detection_metrics(test.labels, scores)
        assert metrics["auc"] == validated_mix["detectors"][name]["test"]["auc"]


def test_metrics_on_known_inputs() -> None:
    perfect = detection_metrics(np.array([0, 0, 1, 1]), np.array([0.1, 0.2, 0.8, 0.9]))
    assert (perfect["auc"], perfect["ap"], perfect["accuracy"], perfect["eer"]) == (1.0, 1.0, 1.0, 0.0)
    inverted = detection_metrics(np.array([0, 1]), np.array([0.9, 0.1]))
    assert (inverted["auc"], inverted["real_accuracy"], inverted["fake_accuracy"]) == (0.0, 0.0, 0.0)
    assert (perfect["n_real"], perfect["n_fake"], perfect["few"], perfect["auc_ci"]) == (2, 2, True, [1.0, 1.0])
    one_class = detection_metrics(np.array([1, 1]), np.array([0.7, 0.2]))
    assert one_class["auc"] is None and one_class["fake_accuracy"] == 0.5
    assert one_class["auc_ci"] is None and one_class["n_real"] == 0 and one_class["few"] is True


def test_auc_interval_is_seeded_and_brackets_sklearns_auc() -> None:
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 400)
    scores = np.round(rng.random(400) + 0.4 * labels, 2)  # rounded: ties count one half
    low, high = auc_interval(labels, scores, seed=1)
    assert low < roc_auc_score(labels, scores) < high and high - low < 0.15
    assert auc_interval(labels, scores, seed=1) == (low, high) != auc_interval(labels, scores, seed=2)
    assert auc_interval(labels, scores, resamples=1)[0] == auc_interval(labels, scores, resamples=1)[1]
    # With every resample the sample itself the interval collapses onto the AUC.
    assert auc_interval(np.array([0, 1]), np.array([0.2, 0.9])) == (1.0, 1.0)


def test_localization_on_known_maps() -> None:
    mask = np.zeros((1, 8, 8))
    mask[0, :4] = 255
    evidence = np.zeros((1, 8, 8))
    evidence[0, :4] = 1.0
    assert localization_scores(evidence, mask) == {"f1": 1.0, "iou": 1.0, "n": 1}


# Pure argument checks: they run before the corpus is read, so an empty folder stands in for it.
def test_unknown_detector_is_refused(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["validate", str(tmp_path), "--detectors", "spectrum,dire"])
    assert result.exit_code == 2 and "unknown ['dire']" in result.output
    assert list(tmp_path.iterdir()) == []


def test_missing_backbone_fails_before_any_training(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["validate", str(tmp_path), "--detectors", "spectrum,clip"])
    assert result.exit_code == 1 and "needs a vision backbone" in result.output
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(shutil.which("chromium") is None, reason="chromium is not installed (make test installs it)")
def test_report_renders_its_plots_in_headless_chromium(
    validated_mix: dict[str, Any], forensics_mix: Path, tmp_path: Path
) -> None:
    report = forensics_mix / "validation" / "report.html"
    flags = chromium_flags(tmp_path / "profile")
    dom = subprocess.run(
        ["chromium", *flags, "--dump-dom", report.as_uri()], capture_output=True, text=True, timeout=120
    ).stdout
    expected = dom.split('data-plots="')[1].split('"')[0]
    assert int(expected) == 4  # ROC test, ROC test_ood, cross-generator matrix, robustness
    assert f'data-plots-rendered="{expected}"' in dom  # every <img> decoded in the browser
    for name, entry in validated_mix["detectors"].items():  # the tables, with n beside every figure
        test = entry["test"]
        assert f"<tr><td>{name}</td><td>{test['auc']} [{test['auc_ci'][0]}, {test['auc_ci'][1]}]</td>" in dom
        assert f"<td>{test['eer']}</td><td>{test['n_real']}</td><td>{test['n_fake']}</td>" in dom
        for column in ("generator", "kind", "perturbation"):
            assert f"<h2>{name}: per {column} (test)</h2>" in dom
        tiny = entry["per_generator"]["tiny-sd"]
        assert f"<td>tiny-sd</td><td>{tiny['auc']} [" in dom and f"<td>{tiny['n_fake']}</td>" in dom
    assert "<h2>Run context</h2>" in dom and validated_mix["context"]["spec_sha256"] in dom
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "validation-report.png"
    print(f"report screenshot: {shot}")
    subprocess.run(
        ["chromium", *flags, "--window-size=1400,4000", f"--screenshot={shot}", report.as_uri()],
        capture_output=True,
        timeout=120,
        check=True,
    )
    from PIL import Image

    pixels = np.asarray(Image.open(shot).convert("L"), dtype=float)
    assert pixels.std() > 20  # not a blank page


def test_per_perturbation_fakes_are_compared_with_reals_degraded_alike() -> None:
    """A detector that flags the degradation itself must not look good per perturbation."""
    from forgeset.detectors.validate import CLEAN_KEY, Scored, _grouped, _robustness

    # reals: 4 clean (score 0.1), 4 jpeg (score 0.9); fakes: 4 clean (0.2), 4 jpeg (0.9): a JPEG spotter
    labels = [0] * 8 + [1] * 8
    perturbation = ["", "", "", "", "jpeg", "jpeg", "jpeg", "jpeg"] * 2
    scores = np.array([0.1] * 4 + [0.9] * 4 + [0.2] * 4 + [0.9] * 4)
    scored = Scored(labels=labels, scores=[scores], perturbation=perturbation, level=[None] * 16)
    grouped = _grouped(scored, scored.perturbation, seed=0, matched_reals=True)
    assert set(grouped) == {CLEAN_KEY, "jpeg"}
    assert grouped["jpeg"]["auc"] == 0.5 and grouped["jpeg"]["n_real"] == 4  # jpeg reals only
    assert grouped[CLEAN_KEY]["auc"] == 1.0 and grouped[CLEAN_KEY]["n_real"] == 4  # clean reals only
    # without degraded reals, degraded fakes are compared with the clean reals
    only_fakes = Scored(labels=labels, scores=[scores], perturbation=[""] * 8 + perturbation[8:], level=[None] * 16)
    assert _grouped(only_fakes, only_fakes.perturbation, seed=0, matched_reals=True)["jpeg"]["n_real"] == 8
    # the clean reference of the robustness curves counts the clean samples
    assert _robustness(scored)["clean_n"] == 8
