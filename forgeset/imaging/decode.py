"""Decode untrusted image bytes into 8-bit RGB, or refuse them with a reason.

Every refusal raises `SampleRejected`; the shard builder turns it into a row of rejects.parquet, so
one bad file never aborts a shard.
"""

from __future__ import annotations

import io
import struct
import warnings
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageOps

from forgeset.core.rejection import SampleRejected

# Formats an input may be in; anything else (PDF, EPS, SVG, ...) is refused before parsing.
ALLOWED_FORMATS = ("JPEG", "PNG", "WEBP", "TIFF", "BMP", "GIF")


@dataclass
class DecodedImage:
    """An RGB uint8 array plus what was done to normalize it (recorded as ops)."""

    pixels: np.ndarray
    source_format: str
    source_mode: str
    source_size: tuple[int, int]
    ops: list[dict] = field(default_factory=list)


def _to_uint8(arr: np.ndarray, mode: str) -> np.ndarray:
    """Scale high-bit-depth integer or float pixels to 0..255."""
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype == np.bool_:
        return arr.astype(np.uint8) * 255
    if np.issubdtype(arr.dtype, np.floating):
        arr = np.nan_to_num(arr, nan=0.0, posinf=1.0, neginf=0.0)
        with np.errstate(over="ignore"):  # huge finite values overflow to inf, then clip to 255
            return np.clip(np.round(arr * 255.0), 0, 255).astype(np.uint8)
    # 16-bit data may arrive as uint16 or as 32-bit ints ("I" mode) holding 0..65535.
    peak = 65535.0 if arr.max(initial=0) > 255 or mode.startswith("I;16") else 255.0
    return np.clip(np.round(arr.astype(np.float64) * (255.0 / peak)), 0, 255).astype(np.uint8)


def decode_image(data: bytes, max_pixels: int, background: tuple[int, int, int]) -> DecodedImage:
    """Decode `data` to RGB uint8: EXIF orientation applied, metadata dropped, alpha flattened.

    Whatever Pillow raises for damaged bytes (at open, load, or reading EXIF) becomes a
    SampleRejected; MemoryError and KeyboardInterrupt are never caught. Pillow's warnings about
    corrupt metadata are silenced: a refusal is an exception, not a log line.
    """
    if not data:
        raise SampleRejected("empty file")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            return _decode(data, max_pixels, background)
        except Image.UnidentifiedImageError:
            raise SampleRejected("not an image", "no allowlisted format recognised the bytes") from None
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
            raise SampleRejected("too many pixels", str(err)) from None
        except _CORRUPT as err:
            raise SampleRejected("truncated or corrupt", str(err) or type(err).__name__) from None


# What Pillow's decoders and metadata parsers raise for damaged input (found by fuzzing too).
_CORRUPT = (
    OSError,
    SyntaxError,
    ValueError,
    TypeError,
    IndexError,
    KeyError,
    EOFError,
    struct.error,
    ZeroDivisionError,
)


def _decode(data: bytes, max_pixels: int, background: tuple[int, int, int]) -> DecodedImage:
    image = Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS)
    width, height = image.size
    if width * height > max_pixels:
        raise SampleRejected("too many pixels", f"{width}x{height} exceeds max_pixels={max_pixels}")
    if width == 0 or height == 0:
        raise SampleRejected("empty image", f"{width}x{height}")
    source_format, source_mode = image.format or "unknown", image.mode
    image.load()
    ops: list[dict] = []
    oriented = ImageOps.exif_transpose(image)
    orientation = image.getexif().get(0x0112, 1)
    if orientation in _TRANSPOSING:
        ops.append({"op": "exif_orientation", "params": {"orientation": int(orientation)}})
    return DecodedImage(
        pixels=_to_rgb(oriented, background, ops),
        source_format=source_format,
        source_mode=source_mode,
        source_size=(width, height),
        ops=ops,
    )


# EXIF orientations that exif_transpose acts on (1 is upright; other values are ignored by it).
_TRANSPOSING = (2, 3, 4, 5, 6, 7, 8)


def _to_rgb(image: Image.Image, background: tuple[int, int, int], ops: list[dict]) -> np.ndarray:
    """Convert any Pillow mode to an HxWx3 uint8 array, recording conversions in `ops`."""
    mode = image.mode
    if mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
        ops.append({"op": "palette_to_rgb", "params": {}})
    elif mode in ("CMYK", "YCbCr", "LAB", "HSV"):
        image = image.convert("RGB")
        ops.append({"op": "colorspace_to_rgb", "params": {"from": mode}})
    elif mode == "1":
        image = image.convert("L")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = np.asarray(image.convert("RGBA"), dtype=np.float64)
        alpha = rgba[..., 3:4] / 255.0
        flat = rgba[..., :3] * alpha + np.asarray(background, dtype=np.float64) * (1.0 - alpha)
        ops.append({"op": "flatten_alpha", "params": {"background": list(background)}})
        return np.ascontiguousarray(np.round(flat).astype(np.uint8))
    arr = np.asarray(image)
    if arr.dtype != np.uint8:
        ops.append({"op": "to_8bit", "params": {"from_dtype": str(arr.dtype), "mode": image.mode}})
        arr = _to_uint8(arr, image.mode)
    if arr.ndim == 2:
        arr = np.repeat(arr[:, :, None], 3, axis=2)
        ops.append({"op": "grey_to_rgb", "params": {}})
    elif arr.shape[2] > 3:
        arr = arr[:, :, :3]
    return np.ascontiguousarray(arr)
