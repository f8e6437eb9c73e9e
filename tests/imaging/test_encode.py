"""The encoder writes lossless PNG or fixed-setting JPEG and never carries metadata."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

from forgeset.imaging.decode import decode_image
from forgeset.imaging.encode import encode_image
from forgeset.imaging.policy import ImagePolicy
from forgeset.imaging.resize import fit_to_policy


def test_png_is_lossless_at_every_level() -> None:
    pixels = np.random.default_rng(1).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    for level in (0, 1, 9):
        data = encode_image(pixels, ImagePolicy(size=32, png_compression=level))
        assert np.array_equal(np.asarray(Image.open(io.BytesIO(data))), pixels)


def test_exif_gps_and_serial_do_not_survive(hostile_images: Path) -> None:
    source = (hostile_images / "ok_exif_gps.jpg").read_bytes()
    assert b"SERIAL-12345-CANARY" in source
    decoded = decode_image(source, 10**8, (255, 255, 255))
    for policy in (ImagePolicy(size=32), ImagePolicy(size=32, format="jpeg")):
        out = encode_image(fit_to_policy(decoded.pixels, policy)[0], policy)
        assert b"SERIAL-12345-CANARY" not in out
        with Image.open(io.BytesIO(out)) as image:
            assert not image.getexif()
            assert "exif" not in image.info and "icc_profile" not in image.info


def test_center_crop_then_resize_records_its_ops() -> None:
    pixels = np.zeros((60, 100, 3), dtype=np.uint8)
    out, ops = fit_to_policy(pixels, ImagePolicy(size=30))
    assert out.shape == (30, 30, 3)
    assert ops == [
        {"op": "center_crop", "params": {"top": 0, "left": 20, "size": 60}},
        {"op": "resize", "params": {"from": [60, 60], "to": [30, 30], "filter": "lanczos"}},
    ]
    same, none = fit_to_policy(np.zeros((30, 30, 3), dtype=np.uint8), ImagePolicy(size=30))
    assert none == [] and same.shape == (30, 30, 3)


def test_jpeg_policy_uses_444_chroma_and_its_quality() -> None:
    pixels = np.random.default_rng(2).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    data = encode_image(pixels, ImagePolicy(size=32, format="jpeg", jpeg_quality=80))
    from PIL import JpegImagePlugin

    with Image.open(io.BytesIO(data)) as image:
        assert image.format == "JPEG"
        assert JpegImagePlugin.get_sampling(image) == 0  # 0 means 4:4:4
