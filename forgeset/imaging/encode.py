"""Encode the final pixels with the policy's format; no metadata is ever written."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from forgeset.imaging.policy import ImagePolicy


def encode_image(pixels: np.ndarray, policy: ImagePolicy) -> bytes:
    """PNG at the policy's zlib level, or baseline JPEG at its quality with 4:4:4 chroma.

    4:4:4 is fixed so the chroma subsampling, like the quality, is the same for every sample.
    Pillow writes no EXIF, ICC or text chunks unless asked, so source metadata (GPS, serial
    numbers) cannot leak into a shard.
    """
    buffer = io.BytesIO()
    image = Image.fromarray(np.ascontiguousarray(pixels))
    if policy.lossless:
        image.save(buffer, format="PNG", compress_level=policy.png_compression, optimize=False)
    else:
        image.save(buffer, format="JPEG", quality=policy.jpeg_quality, subsampling="4:4:4", optimize=False)
    return buffer.getvalue()


def encode_mask(mask: np.ndarray, level: int) -> bytes:
    """A single-channel uint8 PNG (255 = edited pixel)."""
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(mask, dtype=np.uint8)).save(buffer, format="PNG", compress_level=level)
    return buffer.getvalue()
