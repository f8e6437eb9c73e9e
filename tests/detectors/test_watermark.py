"""The watermark detector: training-free, scores marked images above unmarked ones, bit accuracy per payload."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from forgeset.detectors.base import detectors
from forgeset.detectors.watermark import embed, payload_bits

KEY = "c0ffee42"


def pictures(count: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.stack(
        [
            np.asarray(
                Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).resize(
                    (128, 128), Image.Resampling.BICUBIC
                )
            )
            for _ in range(count)
        ]
    )


def detector(payload: str | None) -> object:
    cls = detectors.get("watermark")
    return cls(cls.Params(payload=payload), 128)


def jpeg(pixels: np.ndarray, quality: int) -> np.ndarray:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", quality=quality)
    return np.asarray(Image.open(buffer).convert("RGB"))


CLEAN = pictures(6, 0)
MARKED = np.stack([embed(image, payload_bits(KEY, 32), 24.0) for image in CLEAN])


def test_with_the_key_marked_images_score_one_and_unmarked_near_chance() -> None:
    found = detector(KEY)
    assert found.fit(None, None) == {"trained": False, "method": "dwt-dct-qim", "bits": 32}
    assert found.scores(MARKED).tolist() == [1.0] * 6
    assert found.scores(CLEAN).max() < 0.85


def test_without_a_key_the_confidence_separates_marked_from_unmarked() -> None:
    blind = detector(None).scores(np.concatenate([MARKED, CLEAN]))
    assert blind[:6].min() > blind[6:].max()


def test_bit_accuracy_per_recorded_payload_drops_under_strong_jpeg() -> None:
    found = detector(None)
    other = "0badf00d"
    marked_other = embed(CLEAN[0], payload_bits(other, 32), 24.0)
    assert found.bit_accuracies(np.stack([MARKED[0], marked_other]), [KEY, other]).tolist() == [1.0, 1.0]
    degraded = np.stack([jpeg(image, 10) for image in MARKED])
    assert found.bit_accuracies(degraded, [KEY] * 6).mean() < 0.8


def test_it_is_not_an_attack_surrogate() -> None:
    with pytest.raises(NotImplementedError, match="not differentiable"):
        detector(KEY).logits(None)


def test_a_checkpoint_reloads_with_its_key(tmp_path: Path) -> None:
    from forgeset.detectors.base import load_detector

    path = tmp_path / "watermark.safetensors"
    detector(KEY).save(path)
    reloaded = load_detector(path)
    assert reloaded.params.payload == KEY and reloaded.params.bits == 32
    assert reloaded.scores(MARKED[:2]).tolist() == [1.0, 1.0]
