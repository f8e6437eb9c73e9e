"""RIGID (He et al., 2024), training-free: real images keep their representation under small
noise better than generated ones. Score = 1 - cos(f(x), f(x + sigma * noise)) with a frozen
backbone and a fixed noise field; a 1-D logistic calibration on train maps it to P(fake)."""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from pydantic import Field

from forgeset.detectors.backbone import load_backbone
from forgeset.detectors.base import Detector, DetectorParams, detectors, to_tensor
from forgeset.detectors.data import Samples
from forgeset.detectors.training import one_fit_log


@detectors.register("rigid")
class RigidScore(Detector):
    """No training of the backbone: only two calibration scalars are fitted."""

    needs_backbone = True
    embedding_rank = 4

    class Params(DetectorParams):
        type: Literal["rigid"] = "rigid"
        model: str = Field(min_length=1, description="vision backbone (e.g. DINOv2, CLIP): Hub id or folder")
        revision: str | None = None
        sigma: float = Field(0.05, gt=0, le=1.0, description="noise scale, in [0, 1] pixel units")

    params: Params
    frozen_prefix = "backbone."

    def build(self) -> Any:
        import torch
        from torch import nn

        backbone = load_backbone(self.params.model, self.params.revision)
        generator = torch.Generator().manual_seed(self.params.seed)
        noise = torch.randn(1, 3, self.size, self.size, generator=generator) * self.params.sigma

        class Rigid(nn.Module):
            noise: torch.Tensor
            scale: torch.Tensor
            offset: torch.Tensor

            def __init__(self) -> None:
                super().__init__()
                self.backbone = backbone
                self.register_buffer("noise", noise)
                self.register_buffer("scale", torch.ones(()))
                self.register_buffer("offset", torch.zeros(()))

            def raw(self, x: torch.Tensor) -> torch.Tensor:
                clean, noisy = self.backbone(x), self.backbone((x + self.noise).clamp(0, 1))
                return 1.0 - torch.nn.functional.cosine_similarity(clean, noisy, dim=1)

            def features(self, x: torch.Tensor) -> torch.Tensor:
                return self.backbone(x)

            def forward(self, x: torch.Tensor) -> torch.Tensor:
                return self.scale * (self.raw(x) - self.offset)

        return Rigid()

    def fit(self, train: Samples, val: Samples | None, progress: Any = None) -> dict[str, Any]:
        import torch
        from sklearn.linear_model import LogisticRegression

        raws, labels = [], []
        with torch.no_grad():
            for batch in train.batches(64):
                raws.append(self.module.raw(to_tensor(batch.images)).numpy())
                labels.append(batch.labels)
        if not raws:
            raise ValueError("no training samples")
        raw = np.concatenate(raws)
        spread = raw.std() + 1e-8
        model = LogisticRegression(max_iter=1000).fit((raw / spread)[:, None], np.concatenate(labels))
        with torch.no_grad():
            self.module.scale.fill_(float(model.coef_[0, 0]) / spread)
            self.module.offset.fill_(-float(model.intercept_[0]) * spread / float(model.coef_[0, 0] or 1.0))
        return one_fit_log(self, val, progress, "calibrated")
