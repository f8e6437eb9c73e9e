"""Sharpness: variance of the Laplacian of the luma (no model); blurred or flat images score low."""

from __future__ import annotations

from typing import Literal

import numpy as np

from forgeset.quality.base import QualityScorer, ScorerParams, quality_scorers


@quality_scorers.register("sharpness")
class Sharpness(QualityScorer):
    """Variance of OpenCV's 3 x 3 Laplacian of the grey image, in grey levels squared."""

    class Params(ScorerParams):
        type: Literal["sharpness"] = "sharpness"

    def score(self, pixels: np.ndarray, prompts: list[str] | None = None) -> np.ndarray:
        import cv2

        self._check(pixels, prompts)
        return np.array(
            [float(cv2.Laplacian(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY), cv2.CV_64F).var()) for image in pixels],
            dtype=np.float64,
        )
