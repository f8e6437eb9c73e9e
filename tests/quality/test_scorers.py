"""Quality scorers: the spec entry, thresholds, sharpness order, deterministic tiny-CLIP scores."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from forgeset.quality import QualityCheck
from forgeset.quality.builtin_models import resolve_model

PICTURES = np.stack(
    [
        np.asarray(
            Image.fromarray(np.random.default_rng(seed).integers(0, 256, (12, 12, 3), dtype=np.uint8)).resize(
                (48, 40), Image.Resampling.BICUBIC
            )
        )
        for seed in range(5)
    ]
)
PROMPTS = ["a red fox in snow", "a city at night", "a bowl of fruit", "a sailing boat", "a mountain lake"]
CLIP = {"metric": "clip-score", "model": "builtin:tiny-clip", "batch_size": 2}
AESTHETIC = {"metric": "aesthetic", "model": "builtin:tiny-clip", "head": "builtin:tiny-aesthetic", "batch_size": 3}


def check(**entry: object) -> QualityCheck:
    return QualityCheck.model_validate(entry)


def test_sharpness_orders_a_blurred_image_below_the_original() -> None:
    blurred = np.stack([cv2.GaussianBlur(image, (0, 0), 2.0) for image in PICTURES])
    scorer = check(metric="sharpness").build()
    original, soft = scorer.score(PICTURES), scorer.score(blurred)
    assert original.shape == (5,) and original.dtype == np.float64
    assert (soft < original).all()
    flat = np.full((1, 16, 16, 3), 90, np.uint8)
    assert scorer.score(flat).tolist() == [0.0]


def test_tiny_clip_scores_are_deterministic_cosines_independent_of_batching() -> None:
    scores = check(**CLIP).build().score(PICTURES, PROMPTS)
    again = check(**{**CLIP, "batch_size": 5}).build().score(PICTURES, PROMPTS)
    assert scores.shape == (5,) and scores.dtype == np.float64
    np.testing.assert_allclose(scores, again, atol=1e-6)
    assert (np.abs(scores) <= 1.0).all() and len(set(np.round(scores, 6))) == 5
    other = check(**CLIP).build().score(PICTURES, PROMPTS[::-1])
    assert not np.allclose(other, scores)  # the prompt matters


def test_tiny_clip_is_built_once_into_the_cache_as_safetensors() -> None:
    folder = Path(resolve_model("builtin:tiny-clip"))
    assert resolve_model("builtin:tiny-clip") == str(folder)
    assert (folder / ".complete").exists() and list(folder.glob("*.safetensors"))
    assert not list(folder.glob("*.bin"))
    assert resolve_model("openai/clip-vit-base-patch32") == "openai/clip-vit-base-patch32"
    with pytest.raises(KeyError, match="unknown builtin quality model 'builtin:tiny-nope'"):
        resolve_model("builtin:tiny-nope")


def test_tiny_aesthetic_is_deterministic_and_shaped_right() -> None:
    scores = check(**AESTHETIC).build().score(PICTURES)
    assert scores.shape == (5,) and scores.dtype == np.float64
    np.testing.assert_allclose(scores, check(**{**AESTHETIC, "batch_size": 1}).build().score(PICTURES), atol=1e-6)
    assert len(set(np.round(scores, 6))) == 5


def test_clip_score_needs_one_prompt_per_image() -> None:
    scorer = check(**CLIP).build()
    with pytest.raises(ValueError, match="clip-score needs one prompt per image: 5 images, 2 prompts"):
        scorer.score(PICTURES, PROMPTS[:2])
    with pytest.raises(ValueError, match="uint8 N x H x W x 3"):
        scorer.score(PICTURES[0], PROMPTS[:1])


def test_thresholds_and_the_resolved_form() -> None:
    entry = check(metric="sharpness", min=10.0, max=100.0, action="reject")
    assert entry.passes(np.array([9.9, 10.0, 55.0, 100.0, 100.1])).tolist() == [False, True, True, True, False]
    dumped = entry.model_dump(mode="json")
    assert dumped == {
        "metric": "sharpness",
        "scorer": {"type": "sharpness", "batch_size": 32},
        "min": 10.0,
        "max": 100.0,
        "action": "reject",
    }
    assert QualityCheck.model_validate(dumped) == entry
    assert check(metric="sharpness").passes(np.array([0.0])).tolist() == [True]


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"metric": "sharpness", "min": 5, "max": 1}, "min 5.0 is above max 1.0"),
        ({"metric": "sharpness", "action": "reject"}, "action reject needs a `min` or a `max`"),
        ({"metric": "sharpness", "model": "x"}, "Extra inputs are not permitted"),
        ({"metric": "blurriness"}, "unknown quality metric 'blurriness'"),
        ({"metric": "aesthetic"}, "head"),
    ],
)
def test_bad_entries_name_the_problem(entry: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        QualityCheck.model_validate(entry)


def test_a_laion_shaped_head_with_dropout_gaps_is_applied_linearly(tmp_path: Path) -> None:
    """LAION's head stores linear layers 0, 2, 4 (dropout in between) and has no activation."""
    from safetensors.numpy import save_file

    from forgeset.quality.builtin_models import HEAD_FILE
    from forgeset.quality.clip_embedder import ClipEmbedder

    width = ClipEmbedder("builtin:tiny-clip", None).images(PICTURES[:1]).shape[1]
    rng = np.random.default_rng(3)
    shapes = {0: (8, width), 2: (4, 8), 4: (1, 4)}
    tensors = {}
    for index, shape in shapes.items():
        tensors[f"layers.{index}.weight"] = rng.normal(size=shape).astype(np.float32)
        tensors[f"layers.{index}.bias"] = rng.normal(size=shape[0]).astype(np.float32)
    save_file(tensors, str(tmp_path / HEAD_FILE))
    scores = check(metric="aesthetic", model="builtin:tiny-clip", head=str(tmp_path)).build().score(PICTURES)
    hidden = ClipEmbedder("builtin:tiny-clip", None).images(PICTURES).astype(np.float64)
    for index in sorted(shapes):
        hidden = hidden @ tensors[f"layers.{index}.weight"].astype(np.float64).T + tensors[f"layers.{index}.bias"]
    np.testing.assert_allclose(scores, hidden[:, 0], rtol=1e-6)
    (tmp_path / HEAD_FILE).unlink()
    save_file({"layers.0.weight": tensors["layers.0.weight"]}, str(tmp_path / HEAD_FILE))
    with pytest.raises(ValueError, match=r"must hold layers.N.weight and layers.N.bias"):
        check(metric="aesthetic", model="builtin:tiny-clip", head=str(tmp_path)).build().setup()
