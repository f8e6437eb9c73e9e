"""Free-form brush strokes, as LaMa's irregular masks draw them."""

from __future__ import annotations

from typing import Literal

import cv2
import numpy as np
from pydantic import Field

from forgeset.generators.masks.base import MaskContext, MaskGenerator, MaskParams, area_fraction, mask_generators


@mask_generators.register("brush")
class BrushMask(MaskGenerator):
    """Random-walk polylines with round joints, added until the sampled target area is reached.

    Areas are measured after dilation. A stroke that would push the area past the maximum is
    redrawn thinner, so the result lies in the configured range.
    """

    class Params(MaskParams):
        type: Literal["brush"] = "brush"
        width: tuple[float, float] = Field((0.03, 0.1), description="stroke width as a fraction of the side")
        vertices: tuple[int, int] = Field((4, 10), description="points per stroke")

    params: Params

    def _stroke(self, rng: np.random.Generator, mask: np.ndarray, scale: float) -> np.ndarray:
        height, width = mask.shape
        side = min(height, width)
        out = mask.copy()
        thickness = max(1, round(rng.uniform(*self.params.width) * side * scale))
        point = np.array([rng.integers(0, width), rng.integers(0, height)], dtype=float)
        for _ in range(int(rng.integers(self.params.vertices[0], self.params.vertices[1] + 1))):
            angle = rng.uniform(0, 2 * np.pi)
            length = rng.uniform(0.1, 0.3) * side
            nxt = np.clip(point + length * np.array([np.cos(angle), np.sin(angle)]), 0, [width - 1, height - 1])
            cv2.line(out, tuple(int(v) for v in point), tuple(int(v) for v in nxt), 255, thickness, cv2.LINE_8)
            cv2.circle(out, tuple(int(v) for v in nxt), thickness // 2, 255, -1)
            point = nxt
        return out

    def draw(self, rng: np.random.Generator, context: MaskContext) -> np.ndarray:
        low, high = self.params.area
        target = rng.uniform(low, high)
        mask = np.zeros((context.height, context.width), dtype=np.uint8)
        scale = 1.0
        for _ in range(500):
            if area_fraction(self.dilate(mask)) >= target:
                break
            candidate = self._stroke(rng, mask, scale)
            if area_fraction(self.dilate(candidate)) > high:
                scale *= 0.7  # too much at once: thinner strokes from now on
                continue
            mask = candidate
        if not low <= area_fraction(self.dilate(mask)) <= high:
            mask = np.zeros_like(mask)  # pathological sizes: fall back to a centred square
            side = int(np.sqrt(target * mask.size))
            top, left = (context.height - side) // 2, (context.width - side) // 2
            mask[top : top + side, left : left + side] = 255
        return mask
