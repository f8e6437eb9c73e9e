"""Invisible watermark (DWT-DCT) with a recorded payload, for passive-vs-watermark detection studies."""

from __future__ import annotations

from functools import partial
from typing import Any, Literal

import numpy as np
from pydantic import Field

from forgeset.detectors.watermark import METHOD, NAME, embed, payload_bits
from forgeset.perturbations.ops.base import OpParams, PerturbOp, perturb_ops

PER_SAMPLE = "per-sample"


def _embed_image(image: np.ndarray, bits: np.ndarray, strength: float, **_: Any) -> np.ndarray:
    return embed(image, bits, strength)


@perturb_ops.register(NAME)
class Watermark(PerturbOp):
    """Embed `bits` payload bits: a fixed key (hex, as a provider would) or drawn per sample from its seed."""

    class Params(OpParams):
        type: Literal["watermark"] = "watermark"
        payload: str = Field(
            PER_SAMPLE,
            pattern=rf"^(({PER_SAMPLE})|([0-9a-f]{{2}})+)$",
            description="lowercase hex key shared by every marked sample, or per-sample (drawn from the sample seed)",
        )
        bits: int = Field(32, ge=8, le=256, description="payload length; a multiple of 8")
        strength: float = Field(24.0, gt=0, le=128, description="QIM step: larger survives more, is more visible")

    params: Params

    def sample(self, rng: np.random.Generator, height: int, width: int) -> dict[str, Any]:
        bits = self.params.bits
        if bits % 8:
            raise ValueError(f"watermark bits must be a multiple of 8, got {bits}")
        if self.params.payload == PER_SAMPLE:
            payload = rng.integers(0, 256, bits // 8, dtype=np.uint8).tobytes().hex()
        else:
            payload = self.params.payload
            payload_bits(payload, bits)  # fails early when the key is shorter than `bits`
        return {"method": METHOD, "payload": payload, "bits": bits, "strength": self.params.strength}

    def transform(self, applied: dict[str, Any], height: int, width: int) -> Any:
        import albumentations as A

        bits = payload_bits(applied["payload"], int(applied["bits"]))
        return A.Lambda(image=partial(_embed_image, bits=bits, strength=float(applied["strength"])), p=1.0)
