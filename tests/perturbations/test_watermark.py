"""The watermark op: payload recorded, bit-exact round trip, deterministic bytes, fragile to strong JPEG."""

from __future__ import annotations

import hashlib
import io

import numpy as np
import pytest
from PIL import Image

from forgeset.detectors.watermark import METHOD, bit_accuracy, decode, payload_bits
from forgeset.perturbations.stage import PerturbStageParams, apply_perturbation

# A smooth 128 px picture (upscaled noise): watermark robustness depends on content, noise is a worst case.
PICTURE = np.asarray(
    Image.fromarray(np.random.default_rng(5).integers(0, 256, (16, 16, 3), dtype=np.uint8)).resize(
        (128, 128), Image.Resampling.BICUBIC
    )
)


def mark(seed: int, **op: object) -> tuple[np.ndarray, dict]:
    stage = PerturbStageParams.model_validate({"name": "wm", "target": "fake", "ops": [{"type": "watermark", **op}]})
    out, _, applied = apply_perturbation(stage, PICTURE, None, seed)
    return out, applied[0]


def jpeg(pixels: np.ndarray, quality: int) -> np.ndarray:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", quality=quality)
    return np.asarray(Image.open(buffer).convert("RGB"))


def test_fixed_payload_round_trips_bit_exactly_and_is_recorded() -> None:
    out, record = mark(0, payload="c0ffee42")
    assert record == {
        "op": "watermark",
        "params": {"method": METHOD, "payload": "c0ffee42", "bits": 32, "strength": 24.0},
        "stage": "wm",
    }
    decoded, votes = decode(out, 32, 24.0)
    assert decoded.tolist() == payload_bits("c0ffee42", 32).tolist()
    assert bytes(np.packbits(decoded)).hex() == "c0ffee42"
    signed = np.where(payload_bits("c0ffee42", 32) == 1, votes, -votes)
    assert signed.min() > 0.5  # every bit decided firmly, not by a narrow vote
    psnr = 10 * np.log10(255**2 / np.mean((out.astype(float) - PICTURE) ** 2))
    assert psnr > 40  # invisible: the change is a few grey levels of luma


def test_per_sample_payload_comes_from_the_seed_and_the_bytes_are_deterministic() -> None:
    out_a, record_a = mark(7)
    out_b, record_b = mark(7)
    out_c, record_c = mark(8)
    assert record_a == record_b and hashlib.sha256(out_a).digest() == hashlib.sha256(out_b).digest()
    assert record_a["params"]["payload"] != record_c["params"]["payload"] and len(record_a["params"]["payload"]) == 8
    for out, record in ((out_a, record_a), (out_c, record_c)):
        decoded, _ = decode(out, 32, 24.0)
        assert bytes(np.packbits(decoded)).hex() == record["params"]["payload"]


def test_bit_accuracy_survives_mild_jpeg_and_drops_under_strong_jpeg() -> None:
    out, _ = mark(0, payload="c0ffee42")
    key = payload_bits("c0ffee42", 32)
    assert bit_accuracy(decode(jpeg(out, 90), 32, 24.0)[0], key) == 1.0
    assert bit_accuracy(decode(jpeg(out, 10), 32, 24.0)[0], key) < 0.8


def test_an_image_too_small_for_the_payload_is_refused() -> None:
    stage = PerturbStageParams.model_validate({"name": "wm", "ops": [{"type": "watermark", "bits": 64}]})
    with pytest.raises(
        ValueError, match="64-bit watermark needs at least 64 blocks of 8 x 8 px; a 32 x 32 image has 16"
    ):
        apply_perturbation(stage, PICTURE[:32, :32], None, 0)


def test_bad_payloads_are_refused() -> None:
    with pytest.raises(ValueError, match="should match pattern"):
        PerturbStageParams.model_validate({"ops": [{"type": "watermark", "payload": "XYZ"}], "name": "wm"})
    stage = PerturbStageParams.model_validate({"name": "wm", "ops": [{"type": "watermark", "payload": "c0ff"}]})
    with pytest.raises(ValueError, match="has 16 bits, fewer than 32"):
        apply_perturbation(stage, PICTURE, None, 0)
