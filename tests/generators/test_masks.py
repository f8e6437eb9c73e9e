"""Every mask generator: area in range, reproducible from the seed, right shape and values."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from forgeset.core.rejection import SampleRejected
from forgeset.generators.masks import MaskContext, area_fraction, mask_generators

CONTEXT = MaskContext(64, 64)


def make(params: dict, seed: int, context: MaskContext = CONTEXT) -> np.ndarray:
    generator_cls = mask_generators.get(params["type"])
    return generator_cls(generator_cls.Params(**params)).make(np.random.default_rng(seed), context)


@pytest.mark.parametrize(
    "params",
    [
        {"type": "boxes", "area": (0.05, 0.25)},
        {"type": "boxes", "area": (0.1, 0.3), "boxes": 3},
        {"type": "brush", "area": (0.05, 0.3)},
        {"type": "brush", "area": (0.1, 0.2), "dilation": 2},
        {"type": "inverse", "area": (0.5, 0.8)},
        {"type": "inverse", "area": (0.6, 0.9), "keep": "brush"},
    ],
    ids=lambda p: "-".join(str(v) for v in p.values()),
)
def test_area_in_range_and_reproducible(params: dict) -> None:
    low, high = params["area"]
    for seed in range(25):
        mask = make(params, seed)
        assert mask.shape == (64, 64) and mask.dtype == np.uint8
        assert set(np.unique(mask)) <= {0, 255}
        assert low <= area_fraction(mask) <= high, (seed, area_fraction(mask))
        assert np.array_equal(mask, make(params, seed))
    assert not np.array_equal(make(params, 0), make(params, 1))


def test_inverse_keeps_a_box_untouched() -> None:
    mask = make({"type": "inverse", "area": (0.5, 0.8)}, 3)
    rows, cols = np.nonzero(mask == 0)
    kept = mask[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
    assert (kept == 0).all()  # the untouched region is one rectangle


def test_dilation_grows_the_mask() -> None:
    plain = make({"type": "boxes", "area": (0.05, 0.1)}, 5)
    grown = make({"type": "boxes", "area": (0.05, 0.3), "dilation": 3}, 5)
    assert area_fraction(grown) > area_fraction(plain)


def test_bad_area_range_is_refused() -> None:
    with pytest.raises(ValueError, match="0 < min <= max < 1"):
        mask_generators.get("boxes").Params(area=(0.4, 0.2))


def test_annotation_polygons_pick_a_fitting_instance() -> None:
    small = [0.1, 0.1, 0.2, 0.1, 0.2, 0.2, 0.1, 0.2]  # 1 % of the image
    medium = [0.2, 0.2, 0.6, 0.2, 0.6, 0.6, 0.2, 0.6]  # 16 %
    context = MaskContext(64, 64, annotation=[small, medium])
    mask = make({"type": "annotation", "area": (0.1, 0.3)}, 0, context)
    assert 0.14 <= area_fraction(mask) <= 0.19
    assert mask[25, 25] == 255 and mask[5, 5] == 0
    with pytest.raises(SampleRejected, match="no usable mask: no annotated instance has an area in"):
        make({"type": "annotation", "area": (0.5, 0.9)}, 0, context)
    with pytest.raises(SampleRejected, match="no annotation"):
        make({"type": "annotation", "area": (0.1, 0.3)}, 0, CONTEXT)


def test_annotation_mask_image_is_resized_to_the_sample() -> None:
    source = np.zeros((100, 100), dtype=np.uint8)
    source[:50, :] = 1  # any non-zero value marks the object
    buffer = io.BytesIO()
    Image.fromarray(source).save(buffer, format="PNG")
    mask = make({"type": "annotation", "area": (0.4, 0.6)}, 0, MaskContext(64, 64, annotation=buffer.getvalue()))
    assert area_fraction(mask) == 0.5 and mask[0, 0] == 255 and mask[63, 0] == 0
