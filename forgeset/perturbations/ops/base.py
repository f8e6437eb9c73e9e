"""Base of the degradation ops: scalar parameters drawn from a seeded RNG, applied by albumentations.

As in albumentations itself, drawing parameters is separate from applying them: `sample(rng)`
returns the scalars actually used (recorded in the sample's `ops`), and `transform(applied)`
builds an albumentations transform whose ranges are pinned to exactly those values.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

import numpy as np
from pydantic import Field, model_validator

from forgeset.core.registry import Registry
from forgeset.core.strict_model import StrictModel


class Sampled(StrictModel):
    """A scalar parameter: one of `choices`, or uniform in `range` (exactly one is given)."""

    choices: list[float | str] | None = Field(default=None, min_length=1)
    range: tuple[float, float] | None = None

    @model_validator(mode="after")
    def _one_form(self) -> Sampled:
        if (self.choices is None) == (self.range is None):
            raise ValueError("give exactly one of `choices` or `range`")
        if self.range is not None and self.range[0] > self.range[1]:
            raise ValueError(f"range must be [min, max], got {list(self.range)}")
        return self

    def draw(self, rng: np.random.Generator) -> float | str:
        """One value from the choices or the range."""
        if self.choices is not None:
            return self.choices[int(rng.integers(0, len(self.choices)))]
        low, high = self.range  # type: ignore[misc]
        return float(rng.uniform(low, high)) if high > low else float(low)


def choices(*values: float | str) -> Sampled:
    """Shorthand for a `Sampled` that picks among `values`."""
    return Sampled(choices=list(values))


def uniform(low: float, high: float) -> Sampled:
    """Shorthand for a `Sampled` uniform in [low, high]."""
    return Sampled(range=(low, high))


class OpParams(StrictModel):
    """Fields every op has; subclasses add their `Sampled` parameters and a `type` literal."""

    type: str


class PerturbOp(ABC):
    """One degradation. `geometric` ops move pixels, so a mask must follow them."""

    Params: ClassVar[type[OpParams]]
    geometric: ClassVar[bool] = False

    def __init__(self, params: OpParams) -> None:
        self.params = params

    @abstractmethod
    def sample(self, rng: np.random.Generator, height: int, width: int) -> dict[str, Any]:
        """The scalar parameters to apply (JSON-serialisable; recorded in `ops`)."""

    @abstractmethod
    def transform(self, applied: dict[str, Any], height: int, width: int) -> Any:
        """An albumentations transform (p=1) that applies exactly `applied`."""


perturb_ops: Registry = Registry("perturbation op")
