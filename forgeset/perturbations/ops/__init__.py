"""Degradation ops; importing this package registers every op type."""

from forgeset.perturbations.ops import (  # noqa: F401
    brightness,
    contrast,
    downscale,
    gaussian_blur,
    gaussian_noise,
    random_crop,
    recompress,
    watermark,
)
from forgeset.perturbations.ops.base import OpParams, PerturbOp, Sampled, choices, perturb_ops, uniform

__all__ = ["OpParams", "PerturbOp", "Sampled", "choices", "perturb_ops", "uniform"]
