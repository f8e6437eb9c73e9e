"""Base of the quality scorers: `setup()` loads what a metric needs, `score(pixels, prompts)` scores a batch.

A spec's `quality` list holds `QualityCheck`s: a metric (with its own options), optional `min`
and `max` thresholds, and the `action` taken outside them (`reject`: a reject row with the
score; `record`: the score is only recorded). Scores are deterministic for the same inputs.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import Field, SerializeAsAny, model_validator

from forgeset.core.registry import Registry
from forgeset.core.strict_model import StrictModel


class ScorerParams(StrictModel):
    """Fields every scorer has; subclasses add their options and a `type` literal."""

    type: str
    batch_size: int = Field(32, ge=1, description="images per forward pass")


class QualityScorer(ABC):
    """One quality metric over uint8 N x H x W x 3 RGB batches; larger is better."""

    Params: ClassVar[type[ScorerParams]]
    needs_prompts: ClassVar[bool] = False

    def __init__(self, params: ScorerParams) -> None:
        self.params = params

    def setup(self) -> None:  # noqa: B027 - metrics without a model need no setup
        """Load models (once per worker); score() calls it when it was not called."""

    @abstractmethod
    def score(self, pixels: np.ndarray, prompts: list[str] | None = None) -> np.ndarray:
        """One float64 score per image of `pixels`; `prompts` (one per image) when `needs_prompts`."""

    def _check(self, pixels: np.ndarray, prompts: list[str] | None) -> None:
        if pixels.ndim != 4 or pixels.shape[-1] != 3 or pixels.dtype != np.uint8:
            raise ValueError(f"quality scorers take uint8 N x H x W x 3 batches, got {pixels.dtype} {pixels.shape}")
        if self.needs_prompts and (prompts is None or len(prompts) != len(pixels)):
            given = "none" if prompts is None else len(prompts)
            raise ValueError(f"{self.params.type} needs one prompt per image: {len(pixels)} images, {given} prompts")


quality_scorers: Registry = Registry("quality metric")


class QualityCheck(StrictModel):
    """One entry of the spec's `quality` list, written flat: `{metric, min, max, action, <metric options>}`."""

    metric: str
    scorer: SerializeAsAny[ScorerParams]
    min: float | None = None
    max: float | None = None
    action: Literal["reject", "record"] = "record"

    @model_validator(mode="before")
    @classmethod
    def _metric_options(cls, data: Any) -> Any:
        if not isinstance(data, dict) or not isinstance(data.get("metric"), str):
            return data
        try:
            params_cls = quality_scorers.get(data["metric"]).Params
        except KeyError as error:  # pydantic reports ValueErrors with the field's location
            raise ValueError(error.args[0]) from None
        bounds = {k: v for k, v in data.items() if k in ("metric", "min", "max", "action")}
        if "scorer" in data:  # the resolved (dumped) form
            scorer = data["scorer"]
            return {**bounds, "scorer": params_cls.model_validate(scorer) if isinstance(scorer, dict) else scorer}
        options = {k: v for k, v in data.items() if k not in bounds}
        return {**bounds, "scorer": params_cls.model_validate({"type": data["metric"], **options})}

    @model_validator(mode="after")
    def _consistent(self) -> QualityCheck:
        if self.scorer.type != self.metric:
            raise ValueError(f"metric {self.metric!r} does not match its options' type {self.scorer.type!r}")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"quality {self.metric}: min {self.min} is above max {self.max}")
        if self.action == "reject" and self.min is None and self.max is None:
            raise ValueError(f"quality {self.metric}: action reject needs a `min` or a `max`")
        return self

    def build(self) -> QualityScorer:
        """The scorer this check runs."""
        scorer: QualityScorer = quality_scorers.get(self.metric)(self.scorer)
        return scorer

    def passes(self, scores: np.ndarray) -> np.ndarray:
        """Whether each score is within [min, max] (bounds inclusive; an absent bound is open)."""
        keep = np.ones(len(scores), dtype=bool)
        if self.min is not None:
            keep &= scores >= self.min
        if self.max is not None:
            keep &= scores <= self.max
        return keep
