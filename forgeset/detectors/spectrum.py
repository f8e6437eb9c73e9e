"""Fourier-spectrum features + logistic regression (Durall et al.; "A Closer Look at Fourier
Spectrum Discrepancies"): the azimuthally averaged log power spectrum of the grey image."""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from pydantic import Field

from forgeset.detectors.base import Detector, DetectorParams, detectors, to_tensor
from forgeset.detectors.training import auc_or_none


@detectors.register("spectrum")
class SpectrumDetector(Detector):
    """A fixed differentiable feature layer (FFT, radial bins) and a linear head fitted by sklearn."""

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

    def _features(self, images: np.ndarray) -> np.ndarray:
        import torch

        with torch.no_grad():
            return np.concatenate(
                [self.module.features(to_tensor(images[i : i + 256])).numpy() for i in range(0, len(images), 256)]
            )

    def fit(self, train: Any, val: Any, progress: Any = None) -> dict[str, Any]:
        import torch
        from sklearn.linear_model import LogisticRegression

        features = self._features(train.images)
        mean, std = features.mean(axis=0), features.std(axis=0) + 1e-6
        model = LogisticRegression(C=self.params.regularization, max_iter=2000)
        model.fit((features - mean) / std, train.labels)
        with torch.no_grad():
            self.module.mean.copy_(torch.from_numpy(mean))
            self.module.std.copy_(torch.from_numpy(std))
            self.module.head.weight.copy_(torch.from_numpy(model.coef_.astype(np.float32)))
            self.module.head.bias.copy_(torch.from_numpy(model.intercept_.astype(np.float32)))
        if progress:
            progress("fitted", 1.0)
        val_auc = auc_or_none(val.labels, self.scores(val.images)) if val is not None and len(val.labels) else None
        return {"epochs": [{"epoch": 1, "val_auc": val_auc}], "selected_epoch": 1}
