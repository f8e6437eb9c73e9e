"""Shipped degradation presets, as published benchmarks define them.

- imagedetectbench: one of JPEG q in {99, 90, 80, 60, 40, 20}, brightness -0.5..0.5, contrast
  0.5..1.5, Gaussian noise sigma 0..0.2, Gaussian blur sigma 0.1..1.0 (ImageDetectBench).
- genimage-degraded: one of downsampling to 112 or 64 px, JPEG q65 or q30, blur sigma 3 or 5
  (GenImage's degraded-image protocol).
- social-media: a chain of random crop (80-100 % of the side), Lanczos resize (50-100 %) and
  JPEG or WebP at q60-100; `repeat` re-applies it, as re-uploads do.
"""

from __future__ import annotations

from typing import Any

from forgeset.perturbations.ops import choices, uniform
from forgeset.perturbations.ops.brightness import Brightness
from forgeset.perturbations.ops.contrast import Contrast
from forgeset.perturbations.ops.downscale import Downscale
from forgeset.perturbations.ops.gaussian_blur import GaussianBlur
from forgeset.perturbations.ops.gaussian_noise import GaussianNoise
from forgeset.perturbations.ops.random_crop import RandomCrop
from forgeset.perturbations.ops.recompress import Recompress


def _imagedetectbench() -> tuple[list[Any], str]:
    return [
        Recompress.Params(format=choices("jpeg"), quality=choices(99, 90, 80, 60, 40, 20)),
        Brightness.Params(delta=uniform(-0.5, 0.5)),
        Contrast.Params(factor=uniform(0.5, 1.5)),
        GaussianNoise.Params(sigma=uniform(0.0, 0.2)),
        GaussianBlur.Params(sigma=uniform(0.1, 1.0)),
    ], "one"


def _genimage_degraded() -> tuple[list[Any], str]:
    return [
        Downscale.Params(side=choices(112, 64), interpolation="area"),
        Recompress.Params(format=choices("jpeg"), quality=choices(65, 30)),
        GaussianBlur.Params(sigma=choices(3.0, 5.0)),
    ], "one"


def _social_media() -> tuple[list[Any], str]:
    return [
        RandomCrop.Params(fraction=uniform(0.8, 1.0)),
        Downscale.Params(scale=uniform(0.5, 1.0), interpolation="lanczos"),
        Recompress.Params(format=choices("jpeg", "webp"), quality=uniform(60, 100)),
    ], "all"


PRESETS = {
    "imagedetectbench": _imagedetectbench,
    "genimage-degraded": _genimage_degraded,
    "social-media": _social_media,
}
