"""Random crop of a sampled fraction of the side, resized back to the corpus size."""

from __future__ import annotations

from typing import Any, Literal

import cv2
import numpy as np
from pydantic import Field

from forgeset.perturbations.ops.base import OpParams, PerturbOp, Sampled, perturb_ops, uniform


@perturb_ops.register("random_crop")
class RandomCrop(PerturbOp):
    """Crop a square of `fraction` x side at a random place, then Lanczos-resize back (masks follow)."""

    geometric = True

    class Params(OpParams):
        type: Literal["random_crop"] = "random_crop"
        fraction: Sampled = Field(default_factory=lambda: uniform(0.8, 1.0))

    params: Params

    def sample(self, rng: np.random.Generator, height: int, width: int) -> dict[str, Any]:
        side = max(1, round(float(self.params.fraction.draw(rng)) * min(height, width)))
        top = int(rng.integers(0, height - side + 1))
        left = int(rng.integers(0, width - side + 1))
        return {"top": top, "left": left, "side": side}

    def transform(self, applied: dict[str, Any], height: int, width: int) -> Any:
        import albumentations as A

        top, left, side = applied["top"], applied["left"], applied["side"]
        return A.Compose(
            [
                A.Crop(x_min=left, y_min=top, x_max=left + side, y_max=top + side, p=1.0),
                A.Resize(height, width, interpolation=cv2.INTER_LANCZOS4, mask_interpolation=cv2.INTER_NEAREST, p=1.0),
            ]
        )
