"""NPR (Tan et al., CVPR 2024): the neighbouring-pixel residual, image minus its nearest-neighbour
down/up-sampled copy, fed to the small CNN. Upsampling leaves its trace there; its energy map
also localizes edits."""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from forgeset.detectors.base import Detector, DetectorParams, detectors, to_tensor
from forgeset.detectors.cnn import small_resnet
from forgeset.detectors.data import Samples
from forgeset.detectors.training import train_module


def npr_residual(images: Any) -> Any:
    """x - up(down(x)) with nearest-neighbour resampling by 2 (differentiable)."""
    import torch.nn.functional as F  # noqa: N812

    down = F.interpolate(images, scale_factor=0.5, mode="nearest")
    return images - F.interpolate(down, size=images.shape[-2:], mode="nearest")


@detectors.register("npr")
class NprDetector(Detector):
    """Residual x 10 (it is small) -> small ResNet -> logit."""

    default_rank = 2
    embedding_rank = 1

    class Params(DetectorParams):
        type: Literal["npr"] = "npr"

    def build(self) -> Any:
        from torch import nn

        backbone = small_resnet()

        class Npr(nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.backbone = backbone

            def features(self, x: Any) -> Any:
                return self.backbone.features(npr_residual(x) * 10.0)

            def forward(self, x: Any) -> Any:
                return self.backbone(npr_residual(x) * 10.0)

        return Npr()

    def fit(self, train: Samples, val: Samples | None, progress: Any = None) -> dict[str, Any]:
        # No blur/JPEG augmentation: both wipe out the residual NPR relies on.
        return train_module(self.module, self.params, train, val, None, self, progress)

    def localize(self, images: np.ndarray) -> np.ndarray:
        """Residual energy, smoothed over 5 x 5 neighbourhoods and scaled to [0, 1] per image."""
        import torch
        import torch.nn.functional as F  # noqa: N812

        with torch.no_grad():
            energy = npr_residual(to_tensor(images)).abs().mean(dim=1, keepdim=True)
            smooth = F.avg_pool2d(energy, 5, stride=1, padding=2).squeeze(1)
            low = smooth.amin(dim=(1, 2), keepdim=True)
            high = smooth.amax(dim=(1, 2), keepdim=True)
            return ((smooth - low) / (high - low + 1e-8)).numpy()
