"""The adversarial stage: PGD lowers the surrogate's fake score within eps; eps 0 changes nothing."""

from __future__ import annotations

import io
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from forgeset.cli import app
from forgeset.detectors.data import load_corpus
from forgeset.detectors.validate import validate_corpus
from forgeset.perturbations.adversarial import AdversarialParams, apply_attack, load_surrogates
from tests.conftest import manifest_rows, tiny_spec


@pytest.fixture(scope="module")
def surrogate(validated_mix: dict[str, Any], forensics_mix: Path) -> Path:
    return forensics_mix / validated_mix["checkpoints"]["cnn"]["path"]


@pytest.fixture(scope="module")
def fakes(forensics_mix: Path) -> np.ndarray:
    test = load_corpus(forensics_mix)["test"]
    return test.images[test.labels == 1][:8]


def attack(surrogate: Path, fakes: np.ndarray, **params: Any) -> list[tuple[np.ndarray, dict]]:
    stage = AdversarialParams(surrogates=[str(surrogate)], **params)
    loaded = load_surrogates(stage, Path("/"), 64)
    return [(pixels, ops[0]["params"]) for pixels, ops in (apply_attack(stage, f, 3, loaded) for f in fakes)]


def test_eps_zero_changes_nothing(surrogate: Path, fakes: np.ndarray) -> None:
    for (pixels, record), original in zip(attack(surrogate, fakes, eps=0.0), fakes, strict=True):
        assert np.array_equal(pixels, original)
        assert record["linf"] == 0.0 and record["score_after"] == record["score_before"]


@pytest.mark.parametrize("kind", ["pgd", "fgsm"])
def test_attack_lowers_the_fake_score_within_eps(surrogate: Path, fakes: np.ndarray, kind: str) -> None:
    eps = 8 / 255
    results = attack(surrogate, fakes, eps=eps, attack=kind, random_start=kind == "pgd")
    before = np.mean([r["score_before"] for _, r in results])
    after = np.mean([r["score_after"] for _, r in results])
    assert after < before
    for (pixels, record), original in zip(results, fakes, strict=True):
        assert np.abs(pixels.astype(int) - original.astype(int)).max() <= 8
        assert record["linf"] <= eps + 1e-6 and 0 < record["ssim"] <= 1 and record["l2"] > 0
        assert record["surrogate_sha256"][0] and record["surrogate_names"][0].startswith("cnn:")
    again = attack(surrogate, fakes, eps=eps, attack=kind, random_start=kind == "pgd")
    assert all(np.array_equal(a[0], b[0]) for a, b in zip(results, again, strict=True))


def test_raid_preset_fills_the_attack_and_refuses_contradictions(surrogate: Path) -> None:
    stage = AdversarialParams(preset="raid", surrogates=[str(surrogate)])
    assert (stage.eps, stage.steps, stage.step_size, stage.random_start, stage.reencode) == (
        32 / 255,
        10,
        0.05,
        False,
        "jpeg75",
    )
    with pytest.raises(ValueError, match="preset 'raid' fixes"):
        AdversarialParams(preset="raid", surrogates=["x"], eps=0.1)


def test_surrogate_of_another_size_is_refused(surrogate: Path) -> None:
    with pytest.raises(ValueError, match="trained at 64 px; this corpus is 32 px"):
        load_surrogates(AdversarialParams(surrogates=[str(surrogate)]), Path("/"), 32)


def test_spec_with_a_validate_checkpoint_builds_verifies_and_reports_success(
    surrogate: Path, tmp_path: Path, build_corpus: Callable[..., Path]
) -> None:
    shutil.copy(surrogate, tmp_path / "cnn.safetensors")
    spec = tiny_spec(
        image={"size": 64},
        splits={"train": 0.5, "val": 0.0, "test": 0.5},
        adversarial=[{"preset": "raid", "surrogates": ["cnn.safetensors"]}],
    )
    spec["generate"][0]["count"] = 16
    out = build_corpus(tmp_path, spec)
    assert CliRunner().invoke(app, ["verify", str(out)]).exit_code == 0
    rows = manifest_rows(out)
    attacked = [r for r in rows.values() if r["perturbation"] == "adv-raid"]
    assert len(attacked) == 16
    for row in attacked:
        parent = rows[row["parent_key"]]
        assert parent["label"] == "fake" and parent["split"] == row["split"]
        record = json.loads(row["ops"])[-1]
        assert record["op"] == "adversarial" and record["params"]["reencode"] == "jpeg75"
    # Each attacked sample is reproducible from its row alone: its parent's pixels and recorded seed.
    from forgeset.builders.spec import load_spec
    from forgeset.manifests.corpus import Corpus

    stage = load_spec(tmp_path / "spec.yaml").spec.adversarial[0]
    surrogates = load_surrogates(stage, tmp_path, 64)
    images = {sample.key: sample.image for sample in Corpus.open(out).iter_samples()}
    for row in attacked[:3]:
        parent = np.asarray(Image.open(io.BytesIO(images[row["parent_key"]])))
        pixels, applied = apply_attack(stage, parent, int(row["perturb_seeds"]), surrogates)
        assert np.array_equal(pixels, np.asarray(Image.open(io.BytesIO(images[row["key"]]))))
        assert applied == [json.loads(row["ops"])[-1]]
    results = validate_corpus(out, ["spectrum"], epochs=1)
    (surrogate_set,) = results["attacks"]
    assert surrogate_set.startswith("cnn:")
    assert 0.0 <= results["attacks"][surrogate_set]["spectrum"] <= 1.0
    assert results["attacks"][surrogate_set]["n"] == sum(1 for r in attacked if r["split"] == "test")
