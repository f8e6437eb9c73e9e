"""Base of the mask generators: a uint8 mask (255 = pixels to edit) drawn from a seeded RNG."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

import cv2
import numpy as np
from pydantic import Field, model_validator

from forgeset.core.registry import Registry
from forgeset.core.rejection import SampleRejected
from forgeset.core.strict_model import StrictModel


class MaskParams(StrictModel):
    """Fields every mask generator has: the target area range and a dilation."""

    type: str
    area: tuple[float, float] = Field((0.05, 0.3), description="min and max fraction of pixels edited")
    dilation: int = Field(0, ge=0, le=64, description="grow the mask by this many pixels (elliptic kernel)")

    @model_validator(mode="after")
    def _area_range(self) -> MaskParams:
        low, high = self.area
        if not 0.0 < low <= high < 1.0:
            raise ValueError(f"area must satisfy 0 < min <= max < 1, got {list(self.area)}")
        return self


@dataclass(frozen=True)
class MaskContext:
    """What a mask may depend on besides the RNG: the image size and the parent's annotation."""

    height: int
    width: int
    annotation: Any = None


# The reject reason of a parent no mask can be made for (e.g. no fitting annotation).
NO_MASK = "no usable mask"


class MaskGenerator(ABC):
    """Draws masks; all randomness comes from the `rng` passed in (seeded by the sample key)."""

    Params: ClassVar[type[MaskParams]]

    def __init__(self, params: MaskParams) -> None:
        self.params = params

    def make(self, rng: np.random.Generator, context: MaskContext) -> np.ndarray:
        """The mask after dilation, redrawn (same RNG stream) until its area lies in `params.area`."""
        low, high = self.params.area
        for _ in range(MAX_DRAWS):
            mask = self.dilate(self.draw(rng, context))
            if low <= area_fraction(mask) <= high:
                return mask
        raise SampleRejected(NO_MASK, f"no mask with an area in [{low}, {high}] after {MAX_DRAWS} draws")

    def dilate(self, mask: np.ndarray) -> np.ndarray:
        """The mask grown by `params.dilation` pixels (unchanged when 0)."""
        if not self.params.dilation:
            return mask
        size = 2 * self.params.dilation + 1
        return cv2.dilate(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size)))

    @abstractmethod
    def draw(self, rng: np.random.Generator, context: MaskContext) -> np.ndarray:
        """An HxW uint8 mask of 0 and 255 before dilation."""


mask_generators: Registry = Registry("mask generator")
MAX_DRAWS = 20


def area_fraction(mask: np.ndarray) -> float:
    """Fraction of pixels marked as edited."""
    return float((mask > 0).mean())
