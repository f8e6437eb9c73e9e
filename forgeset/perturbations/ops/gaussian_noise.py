"""Additive Gaussian noise; sigma is in units of the full intensity range (0..1)."""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from pydantic import Field

from forgeset.perturbations.ops.base import OpParams, PerturbOp, Sampled, perturb_ops, uniform


@perturb_ops.register("gaussian_noise")
class GaussianNoise(PerturbOp):
    """Per-channel zero-mean noise; the noise field itself comes from the op's seeded compose."""

    class Params(OpParams):
        type: Literal["gaussian_noise"] = "gaussian_noise"
        sigma: Sampled = Field(default_factory=lambda: uniform(0.0, 0.2))

    params: Params

    def sample(self, rng: np.random.Generator, height: int, width: int) -> dict[str, Any]:
        return {"sigma": round(float(self.params.sigma.draw(rng)), 6)}

    def transform(self, applied: dict[str, Any], height: int, width: int) -> Any:
        import albumentations as A

        sigma = applied["sigma"]
        return A.GaussNoise(std_range=(sigma, sigma), mean_range=(0.0, 0.0), per_channel=True, p=1.0)
