"""UnivFD-style linear probe: frozen CLIP image features + logistic regression (Ojha et al., CVPR 2023)."""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from pydantic import Field

from forgeset.detectors.backbone import load_backbone
from forgeset.detectors.base import Detector, DetectorParams, detectors, to_tensor
from forgeset.detectors.training import auc_or_none


@detectors.register("clip")
class ClipProbe(Detector):
    """The head (and feature statistics) are trained; the backbone stays frozen and is not saved."""

    class Params(DetectorParams):
        type: Literal["clip"] = "clip"
        model: str = Field(min_length=1, description="CLIP checkpoint: Hub id or local folder")
        revision: str | None = None
        regularization: float = Field(1.0, gt=0)

    params: Params

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
                self.register_buffer("feature_mean", torch.zeros(dim))
                self.register_buffer("feature_std", torch.ones(dim))
                self.head = nn.Linear(dim, 1)

            def features(self, x: torch.Tensor) -> torch.Tensor:
                return self.backbone(x)

            def forward(self, x: torch.Tensor) -> torch.Tensor:
                features = (self.backbone(x) - self.feature_mean) / self.feature_std
                return self.head(features).squeeze(1)

        return Probe()

    def trained_state(self) -> dict[str, Any]:
        return {k: v for k, v in self.module.state_dict().items() if not k.startswith("backbone.")}

    def fit(self, train: Any, val: Any, progress: Any = None) -> dict[str, Any]:
        import torch
        from sklearn.linear_model import LogisticRegression

        with torch.no_grad():
            features = np.concatenate(
                [
                    self.module.backbone(to_tensor(train.images[i : i + 64])).numpy()
                    for i in range(0, len(train.images), 64)
                ]
            )
        mean, std = features.mean(axis=0), features.std(axis=0) + 1e-6
        model = LogisticRegression(C=self.params.regularization, max_iter=2000).fit(
            (features - mean) / std, train.labels
        )
        with torch.no_grad():
            self.module.feature_mean.copy_(torch.from_numpy(mean))
            self.module.feature_std.copy_(torch.from_numpy(std))
            self.module.head.weight.copy_(torch.from_numpy(model.coef_.astype(np.float32)))
            self.module.head.bias.copy_(torch.from_numpy(model.intercept_.astype(np.float32)))
        if progress:
            progress("fitted", 1.0)
        val_auc = auc_or_none(val.labels, self.scores(val.images)) if val is not None and len(val.labels) else None
        return {"epochs": [{"epoch": 1, "val_auc": val_auc}], "selected_epoch": 1}
