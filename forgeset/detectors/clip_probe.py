"""UnivFD-style linear probe: frozen CLIP image features + logistic regression (Ojha et al., CVPR 2023)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from forgeset.detectors.backbone import load_backbone
from forgeset.detectors.base import Detector, DetectorParams, detectors
from forgeset.detectors.data import Samples
from forgeset.detectors.training import fit_linear_head


@detectors.register("clip")
class ClipProbe(Detector):
    """The head (and feature statistics) are trained; the backbone stays frozen and is not saved."""

    needs_backbone = True
    embedding_rank = 2

    class Params(DetectorParams):
        type: Literal["clip"] = "clip"
        model: str = Field(min_length=1, description="CLIP checkpoint: Hub id or local folder")
        revision: str | None = None
        regularization: float = Field(1.0, gt=0)

    params: Params
    frozen_prefix = "backbone."

    def build(self) -> Any:
        import torch
        from torch import nn

        backbone = load_backbone(self.params.model, self.params.revision)
        with torch.no_grad():
            dim = backbone(torch.zeros(1, 3, self.size, self.size)).shape[1]

        class Probe(nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.backbone = backbone
                self.register_buffer("mean", torch.zeros(dim))
                self.register_buffer("std", torch.ones(dim))
                self.head = nn.Linear(dim, 1)

            def features(self, x: torch.Tensor) -> torch.Tensor:
                return self.backbone(x)

            def forward(self, x: torch.Tensor) -> torch.Tensor:
                features = (self.backbone(x) - self.mean) / self.std
                return self.head(features).squeeze(1)

        return Probe()

    def fit(self, train: Samples, val: Samples | None, progress: Any = None) -> dict[str, Any]:
        features, labels = self.embedded(train, batch=64)
        return fit_linear_head(self, features, labels, self.params.regularization, val, progress)
