"""Contrast scaling by a sampled factor (1 = unchanged)."""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from pydantic import Field

from forgeset.perturbations.ops.base import OpParams, PerturbOp, Sampled, perturb_ops, uniform


@perturb_ops.register("contrast")
class Contrast(PerturbOp):
    """Multiply pixel values by `factor` (clipped)."""

    class Params(OpParams):
        type: Literal["contrast"] = "contrast"
        factor: Sampled = Field(default_factory=lambda: uniform(0.5, 1.5))

    params: Params

    def sample(self, rng: np.random.Generator, height: int, width: int) -> dict[str, Any]:
        return {"factor": round(float(self.params.factor.draw(rng)), 6)}

    def transform(self, applied: dict[str, Any], height: int, width: int) -> Any:
        import albumentations as A

        alpha = applied["factor"] - 1.0
        return A.RandomBrightnessContrast(brightness_limit=(0.0, 0.0), contrast_limit=(alpha, alpha), p=1.0)
