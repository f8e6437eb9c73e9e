"""The `perturb` stage: a chain (or a one-of) of degradation ops, seeded by the sample key."""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from pydantic import Field, model_validator

from forgeset.core.naming import NAME_PATTERN
from forgeset.core.strict_model import StrictModel
from forgeset.perturbations.ops import perturb_ops
from forgeset.perturbations.presets import PRESETS


class PerturbStageParams(StrictModel):
    """A perturbation stage; a `preset` is expanded into explicit `ops` in the resolved spec."""

    name: str | None = Field(None, pattern=NAME_PATTERN, description="used in keys; default: the preset")
    preset: Literal[tuple(PRESETS)] | None = None  # type: ignore[valid-type]
    ops: list[perturb_ops.params_union()] = Field(default_factory=list)  # type: ignore[valid-type]
    pick: Literal["all", "one"] = Field("all", description="apply every op in order, or one chosen per sample")
    repeat: int = Field(1, ge=1, le=10, description="apply the chain this many times")
    target: Literal["both", "real", "fake"] = Field(
        "both", description="which class is degraded; both (default) keeps the classes comparable"
    )
    mode: Literal["new", "replace"] = Field(
        "new", description="new: a degraded copy with parent_key; replace: degrade the sample itself"
    )
    fraction: float = Field(1.0, gt=0.0, le=1.0, description="share of the targeted samples degraded")

    @model_validator(mode="before")
    @classmethod
    def _expand_preset(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("preset"):
            if not isinstance(data["preset"], str) or data["preset"] not in PRESETS:
                return data  # the Literal check reports it
            ops, pick = PRESETS[data["preset"]]()
            expanded = [op.model_dump(mode="json") for op in ops]
            given = data.get("ops")
            if given and given != expanded:
                raise ValueError("give either `preset` or `ops`, not both")
            if "pick" in data and data["pick"] != pick:
                raise ValueError(f"preset {data['preset']!r} fixes pick={pick!r}")
            data = {**data, "ops": expanded, "pick": pick}
        return data

    @model_validator(mode="after")
    def _has_ops(self) -> PerturbStageParams:
        if not self.ops:
            raise ValueError("a perturb stage needs a `preset` or a list of `ops`")
        return self

    @property
    def stage_name(self) -> str:
        """The name used in keys and the manifest's `perturbation` column."""
        return self.name or self.preset or "perturb"


# A draw that leaves the pixels byte-identical (e.g. blur sigma 0.137 on a small image) is redrawn
# at most this many times from a seed derived from (sample seed, op position, attempt); if every
# draw is still a no-op, the op record says `noop` and the sample does not count as degraded.
MAX_REDRAWS = 3


def _apply_op(
    op: Any, rng: np.random.Generator, pixels: np.ndarray, mask: np.ndarray | None, height: int, width: int
) -> tuple[np.ndarray, np.ndarray | None, dict[str, Any]]:
    """One op with parameters drawn from `rng`: (pixels, mask, the parameters applied)."""
    import albumentations as A

    applied = op.sample(rng, height, width)
    compose = A.Compose([op.transform(applied, height, width)], seed=int(rng.integers(0, 2**31)))
    if op.geometric and mask is not None:
        result = compose(image=pixels, mask=mask)
        return np.ascontiguousarray(result["image"]), result["mask"], applied
    return np.ascontiguousarray(compose(image=pixels)["image"]), mask, applied


def _unchanged(before: np.ndarray, after: np.ndarray) -> bool:
    return before.shape == after.shape and np.array_equal(before, after)


def apply_perturbation(
    stage: PerturbStageParams, pixels: np.ndarray, mask: np.ndarray | None, seed: int
) -> tuple[np.ndarray, np.ndarray | None, list[dict[str, Any]]]:
    """Degrade `pixels` (and move `mask` with geometric ops); return the ops actually applied.

    Each record is `{op, params, stage}`; `redraws: n` is added when the first n draws left the
    image unchanged, and `noop: true` when all MAX_REDRAWS + 1 draws did (see `is_degraded`).
    """
    rng = np.random.default_rng(seed)
    height, width = pixels.shape[:2]
    applied_ops: list[dict[str, Any]] = []
    position = 0
    for _ in range(stage.repeat):
        chosen = stage.ops if stage.pick == "all" else [stage.ops[int(rng.integers(0, len(stage.ops)))]]
        for op_params in chosen:
            op = perturb_ops.get(op_params.type)(op_params)
            out, out_mask, applied = _apply_op(op, rng, pixels, mask, height, width)
            redraws = 0
            while redraws < MAX_REDRAWS and _unchanged(pixels, out):
                redraws += 1
                redraw_rng = np.random.default_rng([seed % 2**64, position, redraws])
                out, out_mask, applied = _apply_op(op, redraw_rng, pixels, mask, height, width)
            record: dict[str, Any] = {"op": op_params.type, "params": applied, "stage": stage.stage_name}
            if redraws:
                record["redraws"] = redraws
            if _unchanged(pixels, out):
                record["noop"] = True
            applied_ops.append(record)
            pixels, mask = out, out_mask
            position += 1
    return pixels, mask, applied_ops


def is_degraded(applied_ops: list[dict[str, Any]]) -> bool:
    """Whether a perturbation changed the image: false when every applied op was a recorded no-op.

    The shard builder should not write a `mode: new` copy (or count a `replace`d sample as
    perturbed) when this is false: its pixels are its parent's.
    """
    return any(not record.get("noop") for record in applied_ops)
