"""Fourier-spectrum features + logistic regression (Durall et al.; "A Closer Look at Fourier
Spectrum Discrepancies"): the azimuthally averaged log power spectrum of the grey image."""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from pydantic import Field

from forgeset.detectors.base import Detector, DetectorParams, detectors
from forgeset.detectors.data import Samples
from forgeset.detectors.training import fit_linear_head


@detectors.register("spectrum")
class SpectrumDetector(Detector):
    """A fixed differentiable feature layer (FFT, radial bins) and a linear head fitted by sklearn."""

    default_rank = 0
    embedding_rank = 3

    class Params(DetectorParams):
        type: Literal["spectrum"] = "spectrum"
        bins: int = Field(32, ge=4, le=512)
        regularization: float = Field(1.0, gt=0, description="inverse L2 strength (sklearn's C)")

    params: Params

    def build(self) -> Any:
        import torch
        from torch import nn

        size, bins = self.size, self.params.bins
        ys, xs = np.indices((size, size)) - size // 2
        radius = np.sqrt(xs**2 + ys**2) / (np.sqrt(2) * size / 2)
        index = np.minimum((radius * bins).astype(int), bins - 1).ravel()
        assign = np.zeros((size * size, bins), dtype=np.float32)
        assign[np.arange(size * size), index] = 1.0
        assign /= assign.sum(axis=0, keepdims=True).clip(min=1.0)

        class Spectrum(nn.Module):
            assign: torch.Tensor
            mean: torch.Tensor
            std: torch.Tensor

            def __init__(self) -> None:
                super().__init__()
                self.register_buffer("assign", torch.from_numpy(assign))
                self.register_buffer("mean", torch.zeros(bins))
                self.register_buffer("std", torch.ones(bins))
                self.head = nn.Linear(bins, 1)

            def features(self, x: torch.Tensor) -> torch.Tensor:
                grey = x.mean(dim=1)
                power = torch.fft.fftshift(torch.fft.fft2(grey, norm="ortho"), dim=(-2, -1)).abs() ** 2
                return torch.log(power + 1e-8).flatten(1) @ self.assign

            def forward(self, x: torch.Tensor) -> torch.Tensor:
                return self.head((self.features(x) - self.mean) / self.std).squeeze(1)

        return Spectrum()

    def fit(self, train: Samples, val: Samples | None, progress: Any = None) -> dict[str, Any]:
        features, labels = self.embedded(train)
        return fit_linear_head(self, features, labels, self.params.regularization, val, progress)
