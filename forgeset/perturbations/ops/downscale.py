"""Downscale then upscale back: the resolution loss of a resized upload at the corpus size."""

from __future__ import annotations

from typing import Any, Literal

import cv2
import numpy as np
from pydantic import model_validator

from forgeset.perturbations.ops.base import OpParams, PerturbOp, Sampled, perturb_ops

_INTERPOLATION = {
    "area": cv2.INTER_AREA,
    "linear": cv2.INTER_LINEAR,
    "cubic": cv2.INTER_CUBIC,
    "lanczos": cv2.INTER_LANCZOS4,
    "nearest": cv2.INTER_NEAREST,
}


@perturb_ops.register("downscale")
class Downscale(PerturbOp):
    """To `side` pixels (absolute) or `scale` (fraction of the side), then back to the corpus size."""

    class Params(OpParams):
        type: Literal["downscale"] = "downscale"
        side: Sampled | None = None
        scale: Sampled | None = None
        interpolation: Literal["area", "linear", "cubic", "lanczos", "nearest"] = "area"

        @model_validator(mode="after")
        def _one_size(self) -> Downscale.Params:
            if (self.side is None) == (self.scale is None):
                raise ValueError("give exactly one of `side` or `scale`")
            return self

    params: Params

    def sample(self, rng: np.random.Generator, height: int, width: int) -> dict[str, Any]:
        if self.params.side is not None:
            scale = float(self.params.side.draw(rng)) / min(height, width)
        else:
            scale = float(self.params.scale.draw(rng))  # type: ignore[union-attr]
        return {"scale": round(min(scale, 1.0), 6), "interpolation": self.params.interpolation}

    def transform(self, applied: dict[str, Any], height: int, width: int) -> Any:
        import albumentations as A

        flag = _INTERPOLATION[applied["interpolation"]]
        scale = applied["scale"]
        return A.Downscale(scale_range=(scale, scale), interpolation_pair={"downscale": flag, "upscale": flag}, p=1.0)
