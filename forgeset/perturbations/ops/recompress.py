"""JPEG or WebP recompression at a sampled quality (the artifacts stay in the pixels)."""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from pydantic import Field

from forgeset.perturbations.ops.base import OpParams, PerturbOp, Sampled, choices, perturb_ops, uniform


@perturb_ops.register("recompress")
class Recompress(PerturbOp):
    """Encode and decode with a lossy codec; the output is still written with the corpus policy."""

    class Params(OpParams):
        type: Literal["recompress"] = "recompress"
        format: Sampled = Field(default_factory=lambda: choices("jpeg"), description="jpeg and/or webp")
        quality: Sampled = Field(default_factory=lambda: uniform(60, 100))

    params: Params

    def sample(self, rng: np.random.Generator, height: int, width: int) -> dict[str, Any]:
        fmt = str(self.params.format.draw(rng))
        if fmt not in ("jpeg", "webp"):
            raise ValueError(f"recompress format must be jpeg or webp, got {fmt!r}")
        return {"format": fmt, "quality": round(float(self.params.quality.draw(rng)))}

    def transform(self, applied: dict[str, Any], height: int, width: int) -> Any:
        import albumentations as A

        quality = int(applied["quality"])
        return A.ImageCompression(compression_type=applied["format"], quality_range=(quality, quality), p=1.0)
