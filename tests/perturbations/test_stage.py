"""Degradation ops and presets: parameters recorded, reproducible from the seed, within their ranges."""

from __future__ import annotations

import numpy as np
import pytest

from forgeset.perturbations.ops import perturb_ops
from forgeset.perturbations.presets import PRESETS
from forgeset.perturbations.stage import MAX_REDRAWS, PerturbStageParams, apply_perturbation, is_degraded

PIXELS = np.random.default_rng(0).integers(40, 216, (64, 64, 3), dtype=np.uint8)
MASK = np.zeros((64, 64), dtype=np.uint8)
MASK[8:24, 40:56] = 255

OP_CASES = {
    "recompress": {"format": {"choices": ["webp"]}, "quality": {"range": [30, 30]}},
    "downscale": {"scale": {"range": [0.5, 0.5]}},
    "gaussian_blur": {"sigma": {"range": [1.5, 1.5]}},
    "gaussian_noise": {"sigma": {"range": [0.1, 0.1]}},
    "brightness": {"delta": {"range": [0.2, 0.2]}},
    "contrast": {"factor": {"range": [1.4, 1.4]}},
    "random_crop": {"fraction": {"range": [0.75, 0.75]}},
    "watermark": {"payload": "c0ffee42", "bits": 32},
}


def stage(**kwargs: object) -> PerturbStageParams:
    return PerturbStageParams.model_validate(kwargs)


def test_every_registered_op_has_a_case() -> None:
    assert set(OP_CASES) == set(perturb_ops.names())


@pytest.mark.parametrize("op", sorted(OP_CASES))
def test_op_changes_pixels_reproducibly_and_records_its_parameters(op: str) -> None:
    params = stage(name="x", ops=[{"type": op, **OP_CASES[op]}])
    out, mask, applied = apply_perturbation(params, PIXELS, MASK, seed=11)
    again, mask_again, applied_again = apply_perturbation(params, PIXELS, MASK, seed=11)
    assert np.array_equal(out, again) and applied == applied_again and np.array_equal(mask, mask_again)
    assert out.shape == PIXELS.shape and out.dtype == np.uint8
    assert not np.array_equal(out, PIXELS)
    assert [a["op"] for a in applied] == [op] and applied[0]["stage"] == "x"
    moved = not np.array_equal(mask, MASK)
    assert moved == perturb_ops.get(op).geometric


def test_recorded_parameters_are_the_applied_ones() -> None:
    _, _, applied = apply_perturbation(
        stage(name="x", ops=[{"type": "recompress", **OP_CASES["recompress"]}]), PIXELS, None, seed=0
    )
    assert applied[0]["params"] == {"format": "webp", "quality": 30}
    _, _, applied = apply_perturbation(
        stage(name="x", ops=[{"type": "random_crop", **OP_CASES["random_crop"]}]), PIXELS, None, seed=0
    )
    assert applied[0]["params"]["side"] == 48


# Presets are checked at 256 px: at 64 px both of genimage-degraded's downscale sides (112, 64)
# clamp to scale 1.0, and a range check could not tell a right side from a wrong one.
PRESET_SIZE = 256
PRESET_PIXELS = np.random.default_rng(1).integers(40, 216, (PRESET_SIZE, PRESET_SIZE, 3), dtype=np.uint8)
PRESET_MASK = np.zeros((PRESET_SIZE, PRESET_SIZE), dtype=np.uint8)
PRESET_RANGES = {
    "imagedetectbench": {
        "recompress": lambda p: p["quality"] in {99, 90, 80, 60, 40, 20} and p["format"] == "jpeg",
        "brightness": lambda p: -0.5 <= p["delta"] <= 0.5,
        "contrast": lambda p: 0.5 <= p["factor"] <= 1.5,
        "gaussian_noise": lambda p: 0.0 <= p["sigma"] <= 0.2,
        "gaussian_blur": lambda p: 0.1 <= p["sigma"] <= 1.0,
    },
    "genimage-degraded": {
        "downscale": lambda p: p["scale"] in {round(112 / PRESET_SIZE, 6), round(64 / PRESET_SIZE, 6)},
        "recompress": lambda p: p["quality"] in {65, 30},
        "gaussian_blur": lambda p: p["sigma"] in {3.0, 5.0},
    },
    "social-media": {
        "random_crop": lambda p: 0.8 * PRESET_SIZE - 1 <= p["side"] <= PRESET_SIZE,
        "downscale": lambda p: 0.5 <= p["scale"] <= 1.0 and p["interpolation"] == "lanczos",
        "recompress": lambda p: p["format"] in {"jpeg", "webp"} and 60 <= p["quality"] <= 100,
    },
}


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_presets_draw_documented_parameters_reproducibly(preset: str) -> None:
    params = stage(preset=preset)
    seen = set()
    scales = set()
    for seed in range(40):
        _, _, applied = apply_perturbation(params, PRESET_PIXELS, PRESET_MASK, seed)
        assert applied == apply_perturbation(params, PRESET_PIXELS, PRESET_MASK, seed)[2]
        for record in applied:
            assert PRESET_RANGES[preset][record["op"]](record["params"]), record
            seen.add(record["op"])
            if preset == "genimage-degraded" and record["op"] == "downscale":
                scales.add(record["params"]["scale"])
        if preset == "social-media":
            assert [r["op"] for r in applied] == ["random_crop", "downscale", "recompress"]
        else:
            assert len(applied) == 1
    assert seen == set(PRESET_RANGES[preset])
    if preset == "genimage-degraded":  # both documented sides are drawn
        assert scales == {round(112 / PRESET_SIZE, 6), round(64 / PRESET_SIZE, 6)}


def test_preset_expands_into_the_resolved_spec_and_round_trips() -> None:
    params = stage(preset="social-media", repeat=2)
    dumped = params.model_dump(mode="json")
    assert [op["type"] for op in dumped["ops"]] == ["random_crop", "downscale", "recompress"]
    assert PerturbStageParams.model_validate(dumped) == params
    _, _, applied = apply_perturbation(params, PIXELS, None, seed=4)
    assert len(applied) == 6


def test_preset_and_different_ops_are_refused() -> None:
    with pytest.raises(ValueError, match="either `preset` or `ops`"):
        stage(preset="imagedetectbench", ops=[{"type": "brightness"}])
    with pytest.raises(ValueError, match="needs a `preset` or a list of `ops`"):
        stage(name="empty")


BLUR_ANY = {"type": "gaussian_blur", "sigma": {"range": [0.1, 1.0]}}
SMALL = np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8)


def test_a_no_op_first_draw_is_redrawn_and_recorded() -> None:
    # Seed 3 draws sigma 0.177 first, which leaves a 16 px image byte-identical (checked below).
    params = stage(name="b", ops=[BLUR_ANY])
    first_sigma = round(float(np.random.default_rng(3).uniform(0.1, 1.0)), 6)
    from albumentations import Compose, GaussianBlur

    first = Compose([GaussianBlur(blur_limit=0, sigma_limit=(first_sigma, first_sigma), p=1.0)], seed=0)
    assert np.array_equal(first(image=SMALL)["image"], SMALL)
    out, _, applied = apply_perturbation(params, SMALL, None, seed=3)
    assert applied == [{"op": "gaussian_blur", "params": {"sigma": 0.75195}, "stage": "b", "redraws": 1}]
    assert not np.array_equal(out, SMALL) and is_degraded(applied)
    again, _, applied_again = apply_perturbation(params, SMALL, None, seed=3)
    assert np.array_equal(out, again) and applied_again == applied


def test_a_draw_that_changes_the_image_is_kept_as_before() -> None:
    _, _, applied = apply_perturbation(stage(name="b", ops=[BLUR_ANY]), SMALL, None, seed=0)
    assert set(applied[0]) == {"op", "params", "stage"}


def test_an_op_that_can_never_change_the_image_is_a_recorded_no_op() -> None:
    flat = np.full((16, 16, 3), 100, dtype=np.uint8)
    params = stage(name="b", ops=[BLUR_ANY, {"type": "brightness", "delta": {"range": [0.1, 0.1]}}])
    out, _, applied = apply_perturbation(params, flat, None, seed=0)
    assert applied[0]["redraws"] == MAX_REDRAWS and applied[0]["noop"] is True
    assert "noop" not in applied[1] and np.unique(out).tolist() == [125]  # 100 + 0.1 * 255, truncated
    assert is_degraded(applied)
    _, _, blur_only = apply_perturbation(stage(name="b", ops=[BLUR_ANY]), flat, None, seed=0)
    assert not is_degraded(blur_only)
