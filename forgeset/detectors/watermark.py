"""Invisible DWT-DCT watermark: the codec the `watermark` perturbation embeds with, and a training-free detector.

Scheme (the DWT-DCT family of invisible-watermark's `dwtDct`): the luma plane's one-level Haar
DWT approximation band is cut into 4 x 4 blocks; in each block's orthonormal DCT the two lowest
AC coefficients carry one payload bit by quantization index modulation (QIM: the coefficient is
moved to the nearest point of the lattice `strength * k + bit * strength / 2`). Blocks carry the
bits cyclically, so every bit is repeated over the image and decoded by a soft majority vote.

Written here rather than calling the `invisible-watermark` package because that package requires
`opencv-python` (the GUI build), which installs a second, different `cv2` over the
`opencv-python-headless` that albumentations needs, and it refuses images under 256 x 256 px;
PyWavelets and scipy give the transforms. The change is added equally to R, G and B, which is
exactly a change of luma with the chroma untouched (BT.601).

The detector's score for an image is the bit accuracy against the corpus key when one is given
(a fixed payload), else a key-free confidence: how firmly the blocks agree on a lattice (near 1
when marked, near 0 for an unmarked image), so AUC is defined either way.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import Field

from forgeset.detectors.base import Detector, DetectorParams, detectors

NAME = "watermark"  # the registered name of this detector and of the op that embeds the mark
METHOD = "dwt-dct-qim"
BLOCK = 4  # DCT block side on the DWT approximation band (8 x 8 pixels)
CARRIERS = ((0, 1), (1, 0))  # DCT positions carrying the bit in every block
LUMA = np.array([0.299, 0.587, 0.114])


def _luma_blocks(pixels: np.ndarray) -> tuple[np.ndarray, tuple[int, int]]:
    """DCT blocks (R x C x 4 x 4) of the Haar approximation of the luma plane, and the area used."""
    import pywt
    from scipy.fft import dctn

    height, width = (pixels.shape[0] // 8) * 8, (pixels.shape[1] // 8) * 8
    luma = pixels[:height, :width, :3].astype(np.float64) @ LUMA
    approximation, _ = pywt.dwt2(luma, "haar")
    blocks = approximation.reshape(height // 8, BLOCK, width // 8, BLOCK).transpose(0, 2, 1, 3)
    return dctn(blocks, axes=(2, 3), norm="ortho"), (height, width)


def capacity(height: int, width: int) -> int:
    """How many 8 x 8 pixel blocks (bit carriers) an image of this size has."""
    return (height // 8) * (width // 8)


def payload_bits(payload_hex: str, bits: int) -> np.ndarray:
    """The first `bits` bits (MSB first) of a hex payload, as a 0/1 uint8 array."""
    unpacked = np.unpackbits(np.frombuffer(bytes.fromhex(payload_hex), dtype=np.uint8))
    if len(unpacked) < bits:
        raise ValueError(f"payload {payload_hex!r} has {len(unpacked)} bits, fewer than {bits}")
    return unpacked[:bits]


def embed(pixels: np.ndarray, bits: np.ndarray, strength: float) -> np.ndarray:
    """`pixels` (uint8 H x W x 3) with `bits` embedded; deterministic for the same input."""
    import pywt
    from scipy.fft import idctn

    height, width = pixels.shape[:2]
    if capacity(height, width) < len(bits):
        raise ValueError(
            f"a {len(bits)}-bit watermark needs at least {len(bits)} blocks of 8 x 8 px; "
            f"a {width} x {height} image has {capacity(height, width)}"
        )
    coefficients, (used_h, used_w) = _luma_blocks(pixels)
    rows, cols = coefficients.shape[:2]
    carried = np.resize(bits.astype(np.float64), rows * cols).reshape(rows, cols)
    offset = carried * strength / 2
    delta = np.zeros_like(coefficients)
    for i, j in CARRIERS:
        value = coefficients[:, :, i, j]
        quantized = np.round((value - offset) / strength) * strength + offset
        delta[:, :, i, j] = quantized - value
    approximation_delta = (
        idctn(delta, axes=(2, 3), norm="ortho").transpose(0, 2, 1, 3).reshape(used_h // 2, used_w // 2)
    )
    luma_delta = pywt.idwt2((approximation_delta, (None, None, None)), "haar")
    out = pixels.astype(np.float64)
    out[:used_h, :used_w, :3] += luma_delta[:, :, None]
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def decode(pixels: np.ndarray, bits: int, strength: float) -> tuple[np.ndarray, np.ndarray]:
    """(decoded 0/1 bits, soft votes in [-1, 1] per bit; positive means 1) of one image."""
    if capacity(*pixels.shape[:2]) < bits:
        return np.zeros(bits, dtype=np.uint8), np.zeros(bits)
    coefficients, _ = _luma_blocks(pixels)
    rows, cols = coefficients.shape[:2]
    owner = np.arange(rows * cols) % bits
    votes = np.zeros(bits)
    for i, j in CARRIERS:
        # Distance to the bit-0 lattice, as a fraction of the half step: 0 -> -1 (bit 0), 1 -> +1 (bit 1).
        phase = np.mod(coefficients[:, :, i, j].reshape(-1), strength) / strength
        soft = 1.0 - 4.0 * np.abs(phase - 0.5)
        votes += np.bincount(owner, weights=soft, minlength=bits)
    votes /= np.bincount(owner, minlength=bits) * len(CARRIERS)
    return (votes > 0).astype(np.uint8), votes


def bit_accuracy(decoded: np.ndarray, expected: np.ndarray) -> float:
    """Share of bits decoded right."""
    return float(np.mean(decoded == expected))


@detectors.register(NAME)
class WatermarkDetector(Detector):
    """Decodes the DWT-DCT payload; training-free, not differentiable (never an attack surrogate)."""

    class Params(DetectorParams):
        type: Literal["watermark"] = "watermark"
        payload: str | None = Field(
            None, pattern=r"^([0-9a-f]{2})+$", description="the corpus key (hex); None: key-free confidence"
        )
        bits: int = Field(32, ge=8, le=256)
        strength: float = Field(24.0, gt=0)

    params: Params
    embedding_rank: ClassVar[int] = 100  # its features are bit votes, not image content

    def build(self) -> Any:
        from torch import nn

        return nn.Identity()

    def fit(self, train: Any, val: Any, progress: Any = None) -> dict[str, Any]:
        """Nothing to learn: the key and the scheme are given."""
        return {"trained": False, "method": METHOD, "bits": self.params.bits}

    def logits(self, images: Any) -> Any:
        raise NotImplementedError("the watermark detector decodes bits; it is not differentiable")

    def decode_batch(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Decoded bits (N x bits) and soft votes (N x bits) of uint8 N x H x W x 3 images."""
        pairs = [decode(image, self.params.bits, self.params.strength) for image in images]
        if not pairs:
            return np.zeros((0, self.params.bits), np.uint8), np.zeros((0, self.params.bits))
        return np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])

    def bit_accuracies(self, images: np.ndarray, payloads: list[str]) -> np.ndarray:
        """Bit accuracy of each image against its own recorded payload (hex)."""
        decoded, _ = self.decode_batch(images)
        return np.array(
            [bit_accuracy(bits, payload_bits(p, self.params.bits)) for bits, p in zip(decoded, payloads, strict=True)]
        )

    def scores(self, images: np.ndarray, batch: int = 128) -> np.ndarray:
        """Bit accuracy against the key when one is set, else the key-free confidence (mean |vote|)."""
        decoded, votes = self.decode_batch(images)
        if self.params.payload is not None:
            key = payload_bits(self.params.payload, self.params.bits)
            return (decoded == key[None, :]).mean(axis=1) if len(decoded) else np.zeros(0)
        return np.abs(votes).mean(axis=1) if len(votes) else np.zeros(0)

    def embeddings(self, images: np.ndarray, batch: int = 128) -> np.ndarray:
        """The soft bit votes (N x bits)."""
        return self.decode_batch(images)[1]
