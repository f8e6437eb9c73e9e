"""The optional backbone detectors (CLIP linear probe, RIGID) on a tiny random CLIP vision model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from forgeset.cli import app
from forgeset.detectors import load_detector
from forgeset.detectors.clip_probe import ClipProbe
from forgeset.detectors.data import load_corpus
from forgeset.detectors.rigid import RigidScore


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random-weight CLIP vision tower written as safetensors (what a Hub checkpoint looks like)."""
    import torch
    from transformers import CLIPVisionConfig, CLIPVisionModel

    torch.manual_seed(0)
    config = CLIPVisionConfig(
        image_size=32,
        patch_size=8,
        hidden_size=32,
        intermediate_size=37,
        num_hidden_layers=2,
        num_attention_heads=4,
        projection_dim=16,
    )
    folder = tmp_path_factory.mktemp("tiny-clip")
    CLIPVisionModel(config).save_pretrained(folder, safe_serialization=True)
    assert not list(folder.glob("*.bin"))
    return folder


@pytest.mark.parametrize("detector_cls", [ClipProbe, RigidScore])
def test_fit_score_and_reload_without_storing_the_backbone(
    detector_cls: type, tiny_clip: Path, tiny_corpus: Path, tmp_path: Path
) -> None:
    data = load_corpus(tiny_corpus)
    detector = detector_cls(detector_cls.Params(model=str(tiny_clip)), 32)
    detector.fit(data["train"], data.get("val"))
    scores = detector.scores(data["test"].images)
    assert scores.shape == (len(data["test"].labels),) and ((scores >= 0) & (scores <= 1)).all()
    assert len(set(np.round(scores, 6))) > 1  # the calibration spreads the scores
    path = tmp_path / "d.safetensors"
    detector.save(path)
    from safetensors.torch import load_file

    assert not any(key.startswith("backbone.") for key in load_file(str(path)))
    reloaded = load_detector(path)
    assert np.array_equal(reloaded.scores(data["test"].images), scores)


def test_rigid_is_differentiable_for_attacks(tiny_clip: Path, tiny_corpus: Path) -> None:
    import torch

    detector = RigidScore(RigidScore.Params(model=str(tiny_clip)), 32)
    images = torch.rand(2, 3, 32, 32, requires_grad=True)
    detector.logits(images).sum().backward()
    assert images.grad is not None and images.grad.abs().sum() > 0


def test_validate_runs_backbone_detectors_and_needs_the_backbone(
    tiny_clip: Path, tiny_corpus: Path, tmp_path: Path
) -> None:
    import shutil

    out = tmp_path / "corpus"
    shutil.copytree(tiny_corpus, out)
    missing = CliRunner().invoke(app, ["validate", str(out), "--detectors", "clip"])
    assert missing.exit_code == 1 and "needs a vision backbone: pass --backbone" in missing.output
    result = CliRunner().invoke(app, ["validate", str(out), "--detectors", "clip,rigid", "--backbone", str(tiny_clip)])
    assert result.exit_code == 0, result.output
    assert (out / "validation" / "checkpoints" / "rigid.safetensors").exists()
