"""Hostile inputs are normalized to 8-bit RGB or refused with a stable reason."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from forgeset.core.rejection import SampleRejected
from forgeset.imaging.decode import decode_image
from tests.conftest import HOSTILE_ACCEPTED, HOSTILE_REJECTS

WHITE = (255, 255, 255)


def decode(folder: Path, name: str, max_pixels: int = 100_000_000):
    return decode_image((folder / name).read_bytes(), max_pixels, WHITE)


@pytest.mark.parametrize("name", HOSTILE_ACCEPTED)
def test_accepted_inputs_become_uint8_rgb(hostile_images: Path, name: str) -> None:
    decoded = decode(hostile_images, name)
    assert decoded.pixels.dtype == np.uint8
    assert decoded.pixels.ndim == 3 and decoded.pixels.shape[2] == 3
    assert decoded.pixels.flags["C_CONTIGUOUS"]


@pytest.mark.parametrize(("name", "reason"), sorted(HOSTILE_REJECTS.items()))
def test_refused_inputs_name_their_reason(hostile_images: Path, name: str, reason: str) -> None:
    with pytest.raises(SampleRejected) as caught:
        decode(hostile_images, name)
    assert caught.value.reason == reason


def test_exif_orientation_is_applied(hostile_images: Path) -> None:
    decoded = decode(hostile_images, "rotated_exif6.jpg")
    # Stored 40 wide x 20 high, left red / right blue; orientation 6 turns it 90 degrees clockwise.
    assert decoded.pixels.shape == (40, 20, 3)
    top, bottom = decoded.pixels[5, 10], decoded.pixels[35, 10]
    assert top[0] > 200 and top[2] < 60, top
    assert bottom[2] > 200 and bottom[0] < 60, bottom
    assert decoded.ops == [{"op": "exif_orientation", "params": {"orientation": 6}}]


def test_sixteen_bit_scales_to_full_eight_bit(hostile_images: Path) -> None:
    decoded = decode(hostile_images, "grey16.png")
    assert decoded.pixels.min() == 255 and decoded.pixels.max() == 255
    assert [op["op"] for op in decoded.ops] == ["to_8bit", "grey_to_rgb"]


def test_alpha_is_flattened_onto_the_background(hostile_images: Path) -> None:
    decoded = decode(hostile_images, "rgba.png")
    assert decoded.ops == [{"op": "flatten_alpha", "params": {"background": [255, 255, 255]}}]
    black_on_white = decode_image(_png_rgba((0, 0, 0, 0)), 10**8, WHITE).pixels
    assert (black_on_white == 255).all()


def test_cmyk_and_palette_conversions_are_recorded(hostile_images: Path) -> None:
    assert decode(hostile_images, "cmyk.jpg").ops == [{"op": "colorspace_to_rgb", "params": {"from": "CMYK"}}]
    ops = [op["op"] for op in decode(hostile_images, "palette_transparent.png").ops]
    assert ops == ["palette_to_rgb", "flatten_alpha"]


def test_pixel_limit_comes_from_the_policy(hostile_images: Path) -> None:
    with pytest.raises(SampleRejected, match=r"64x48 exceeds max_pixels=1000"):
        decode(hostile_images, "ok_exif_gps.jpg", max_pixels=1000)


def _png_rgba(colour: tuple[int, int, int, int]) -> bytes:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGBA", (4, 4), colour).save(buffer, format="PNG")
    return buffer.getvalue()
