"""A bounded, seeded fuzz of the image intake: damaged bytes are decoded to RGB or refused, nothing else.

Small valid PNG, JPEG, WebP and TIFF files (plus BMP and GIF) made with Pillow are damaged by
byte flips, truncations, insertions, overwrites with extreme values and copied runs. Every input
must give a DecodedImage of HxWx3 uint8 pixels or a SampleRejected, within a few seconds. The
seed is fixed, so a failure names an input that can be rebuilt exactly.
"""

from __future__ import annotations

import io
import random
import signal
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import pytest
from PIL import Image

from forgeset.core.rejection import SampleRejected
from forgeset.imaging.decode import DecodedImage, decode_image

SEED = 20240611
SIZES = [(19, 11), (8, 8), (33, 17)]
INPUTS = 3000
PER_INPUT_SECONDS = 5
MAX_PIXELS = 1_000_000  # mutated headers may claim large sizes; keep each decode small


def _random_image(rng: np.random.Generator, mode: str, width: int, height: int) -> Image.Image:
    pixels = rng.integers(0, 256, (height, width, 4), dtype=np.uint8)
    return Image.fromarray(pixels, "RGBA").convert(mode)


def _save(image: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def _originals() -> list[tuple[str, bytes]]:
    """(label, bytes) of valid small images in the formats the intake allows, at a few sizes."""
    return [(f"{label}-{w}x{h}", data) for w, h in SIZES for label, data in _recipes(w, h)]


def _recipes(width: int, height: int) -> list[tuple[str, bytes]]:
    """The valid images at one size: one per format, mode and encoder option worth damaging."""
    rng = np.random.default_rng([SEED, width, height])

    def image(mode: str) -> Image.Image:
        return _random_image(rng, mode, width, height)

    exif = Image.Exif()
    exif[0x0112] = 6  # rotated: exercises the EXIF path
    exif_bytes = exif.tobytes()
    grey16 = Image.fromarray((rng.random((height, width)) * 65535).astype(np.uint16))
    floats = Image.fromarray(rng.random((height, width)).astype(np.float32))
    frames = [image("P") for _ in range(3)]
    return [
        ("png-rgb-exif", _save(image("RGB"), "PNG", exif=exif_bytes)),
        ("png-rgba", _save(image("RGBA"), "PNG")),
        ("png-palette", _save(image("P"), "PNG", transparency=0)),
        ("png-grey16", _save(grey16, "PNG")),
        ("jpeg-exif", _save(image("RGB"), "JPEG", quality=80, exif=exif_bytes)),
        ("jpeg-progressive", _save(image("RGB"), "JPEG", progressive=True)),
        ("jpeg-cmyk", _save(image("CMYK"), "JPEG")),
        ("webp-lossy", _save(image("RGB"), "WEBP", quality=70, exif=exif_bytes)),
        ("webp-lossless-alpha", _save(image("RGBA"), "WEBP", lossless=True)),
        ("tiff-raw", _save(image("RGB"), "TIFF")),
        ("tiff-lzw-alpha", _save(image("RGBA"), "TIFF", compression="tiff_lzw")),
        (
            "tiff-deflate-pages",
            _save(
                image("RGB"),
                "TIFF",
                compression="tiff_adobe_deflate",
                save_all=True,
                append_images=[image("RGB")],
            ),
        ),
        ("tiff-float", _save(floats, "TIFF")),
        ("tiff-fax", _save(image("1"), "TIFF", compression="group4")),
        ("bmp", _save(image("RGB"), "BMP")),
        ("gif-animated", _save(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=10)),
    ]


def _damage(rnd: random.Random, data: bytes) -> bytes:
    """One to three random damages: flips, truncation, insertion, extreme values, a copied run."""
    damaged = bytearray(data)
    for _ in range(rnd.randint(1, 3)):
        if not damaged:
            break
        at = rnd.randrange(len(damaged))
        kind = rnd.randrange(5)
        if kind == 0:
            for _ in range(rnd.randint(1, 8)):
                damaged[rnd.randrange(len(damaged))] = rnd.randrange(256)
        elif kind == 1:
            damaged = damaged[:at]
        elif kind == 2:
            damaged[at:at] = rnd.randbytes(rnd.randint(1, 32))
        elif kind == 3:
            damaged[at : at + 4] = rnd.choice([b"\xff\xff\xff\xff", b"\x00\x00\x00\x00", b"\x7f\xff\xff\xff"])
        else:
            start = rnd.randrange(len(damaged))
            damaged[at : at + 8] = damaged[start : start + 8]
    return bytes(damaged)


class _TooSlow(Exception):
    pass


@contextmanager
def _time_limit(seconds: int) -> Iterator[None]:
    """Raise _TooSlow if the block runs longer than `seconds` (SIGALRM; the test runs on the main thread)."""

    def expire(signum: int, frame: object) -> None:
        raise _TooSlow

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@pytest.mark.skipif(not hasattr(signal, "SIGALRM"), reason="needs SIGALRM")
def test_damaged_images_decode_to_rgb_or_are_refused() -> None:
    originals = _originals()
    for label, data in originals:  # the undamaged inputs all decode
        decoded = decode_image(data, MAX_PIXELS, (255, 255, 255))
        assert decoded.pixels.dtype == np.uint8 and decoded.pixels.shape[2] == 3, label
    rnd = random.Random(SEED)
    outcomes: Counter[str] = Counter()
    failures = []
    for number in range(INPUTS):
        label, data = originals[number % len(originals)]
        damaged = _damage(rnd, data)
        started = time.monotonic()
        try:
            with _time_limit(PER_INPUT_SECONDS):
                result = decode_image(damaged, MAX_PIXELS, (0, 0, 0))
        except SampleRejected as rejected:
            assert rejected.reason and str(rejected)
            outcomes[rejected.reason] += 1
            continue
        except _TooSlow:
            failures.append(f"input {number} ({label}): longer than {PER_INPUT_SECONDS} s")
            continue
        except Exception as err:  # anything else is a crash of the intake
            failures.append(f"input {number} ({label}): {type(err).__name__}: {err}")
            continue
        assert isinstance(result, DecodedImage)
        pixels = result.pixels
        if not (pixels.dtype == np.uint8 and pixels.ndim == 3 and pixels.shape[2] == 3 and pixels.size):
            failures.append(f"input {number} ({label}): pixels {pixels.dtype} {pixels.shape}")
        assert time.monotonic() - started < PER_INPUT_SECONDS
        outcomes["decoded"] += 1
    assert failures == []
    assert sum(outcomes.values()) == INPUTS
    # The damage is varied enough to reach the decoders, not only the format sniffing.
    assert outcomes["decoded"] > INPUTS // 10 and outcomes["truncated or corrupt"] > INPUTS // 10, outcomes
    assert set(outcomes) <= {
        "decoded",
        "truncated or corrupt",
        "not an image",
        "too many pixels",
        "empty image",
        "empty file",
    }
