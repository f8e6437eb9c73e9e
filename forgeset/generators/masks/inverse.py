"""Background masks: everything except a box or brush region (BR-Gen's background edits)."""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field

from forgeset.generators.masks.base import MaskContext, MaskGenerator, MaskParams, mask_generators
from forgeset.generators.masks.boxes import BoxMask
from forgeset.generators.masks.brush import BrushMask

_KEPT = {"boxes": BoxMask, "brush": BrushMask}


@mask_generators.register("inverse")
class InverseMask(MaskGenerator):
    """The complement of a `keep` region; `area` is the edited (background) fraction."""

    class Params(MaskParams):
        type: Literal["inverse"] = "inverse"
        area: tuple[float, float] = Field((0.5, 0.9), description="min and max fraction of pixels edited")
        keep: Literal["boxes", "brush"] = Field("boxes", description="shape of the region left untouched")

    params: Params

    def draw(self, rng: np.random.Generator, context: MaskContext) -> np.ndarray:
        low, high = self.params.area
        kept_cls = _KEPT[self.params.keep]
        kept = kept_cls(kept_cls.Params.model_validate({"area": (1.0 - high, 1.0 - low)})).draw(rng, context)
        return np.where(kept > 0, 0, 255).astype(np.uint8)
