"""Gaussian blur at a sampled sigma."""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from pydantic import Field

from forgeset.perturbations.ops.base import OpParams, PerturbOp, Sampled, perturb_ops, uniform


@perturb_ops.register("gaussian_blur")
class GaussianBlur(PerturbOp):
    """Blur with a kernel sized from sigma (albumentations' rule when blur_limit is 0)."""

    class Params(OpParams):
        type: Literal["gaussian_blur"] = "gaussian_blur"
        sigma: Sampled = Field(default_factory=lambda: uniform(0.1, 1.0))

    params: Params

    def sample(self, rng: np.random.Generator, height: int, width: int) -> dict[str, Any]:
        return {"sigma": round(float(self.params.sigma.draw(rng)), 6)}

    def transform(self, applied: dict[str, Any], height: int, width: int) -> Any:
        import albumentations as A

        sigma = applied["sigma"]
        return A.GaussianBlur(blur_limit=0, sigma_limit=(sigma, sigma), p=1.0)
