"""Brightness shift by a sampled fraction of the maximum intensity."""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from pydantic import Field

from forgeset.perturbations.ops.base import OpParams, PerturbOp, Sampled, perturb_ops, uniform


@perturb_ops.register("brightness")
class Brightness(PerturbOp):
    """Add `delta` x 255 to every pixel (clipped)."""

    class Params(OpParams):
        type: Literal["brightness"] = "brightness"
        delta: Sampled = Field(default_factory=lambda: uniform(-0.5, 0.5))

    params: Params

    def sample(self, rng: np.random.Generator, height: int, width: int) -> dict[str, Any]:
        return {"delta": round(float(self.params.delta.draw(rng)), 6)}

    def transform(self, applied: dict[str, Any], height: int, width: int) -> Any:
        import albumentations as A

        delta = applied["delta"]
        return A.RandomBrightnessContrast(
            brightness_limit=(delta, delta), contrast_limit=(0.0, 0.0), brightness_by_max=True, p=1.0
        )
