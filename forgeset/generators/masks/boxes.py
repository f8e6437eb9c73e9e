"""Random axis-aligned rectangles (the classic "box" inpainting mask)."""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field

from forgeset.generators.masks.base import MaskContext, MaskGenerator, MaskParams, mask_generators


@mask_generators.register("boxes")
class BoxMask(MaskGenerator):
    """`boxes` rectangles that share a target area drawn uniformly from the area range."""

    class Params(MaskParams):
        type: Literal["boxes"] = "boxes"
        boxes: int = Field(1, ge=1, le=16)
        aspect: tuple[float, float] = Field((0.5, 2.0), description="width/height ratio range")

    params: Params

    def draw(self, rng: np.random.Generator, context: MaskContext) -> np.ndarray:
        height, width = context.height, context.width
        low, high = self.params.area
        target = rng.uniform(low, high) * height * width / self.params.boxes
        mask = np.zeros((height, width), dtype=np.uint8)
        for _ in range(self.params.boxes):
            aspect = rng.uniform(*self.params.aspect)
            box_h = int(np.clip(round(np.sqrt(target / aspect)), 1, height))
            box_w = int(np.clip(round(target / box_h), 1, width))
            top = int(rng.integers(0, height - box_h + 1))
            left = int(rng.integers(0, width - box_w + 1))
            mask[top : top + box_h, left : left + box_w] = 255
        return mask
