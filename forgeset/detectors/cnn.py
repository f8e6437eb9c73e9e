"""A small ResNet-style CNN trained from scratch with blur+JPEG augmentation (CNNDetection, scaled down)."""

from __future__ import annotations

from typing import Any, Literal

from forgeset.detectors.base import Detector, DetectorParams, detectors
from forgeset.detectors.data import Samples
from forgeset.detectors.training import blur_jpeg_augment, train_module


def small_resnet(in_channels: int = 3, width: int = 32) -> Any:
    """conv stem + three residual stages (stride 2) + global average pool + linear -> one logit."""
    import torch
    from torch import nn

    class Block(nn.Module):
        def __init__(self, cin: int, cout: int, stride: int) -> None:
            super().__init__()
            self.body = nn.Sequential(
                nn.Conv2d(cin, cout, 3, stride, 1, bias=False),
                nn.BatchNorm2d(cout),
                nn.ReLU(inplace=True),
                nn.Conv2d(cout, cout, 3, 1, 1, bias=False),
                nn.BatchNorm2d(cout),
            )
            self.skip = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.relu(self.body(x) + self.skip(x))

    class SmallResNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.stem = nn.Sequential(
                nn.Conv2d(in_channels, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True)
            )
            self.stages = nn.Sequential(
                Block(width, width, 2), Block(width, 2 * width, 2), Block(2 * width, 4 * width, 2)
            )
            self.head = nn.Linear(4 * width, 1)

        def features(self, x: torch.Tensor) -> torch.Tensor:
            return self.stages(self.stem(x)).mean(dim=(2, 3))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.head(self.features(x)).squeeze(1)

    return SmallResNet()


@detectors.register("cnn")
class CnnDetector(Detector):
    """Pixels -> small ResNet -> logit."""

    default_rank = 1
    embedding_rank = 0

    class Params(DetectorParams):
        type: Literal["cnn"] = "cnn"

    def build(self) -> Any:
        return small_resnet()

    def fit(self, train: Samples, val: Samples | None, progress: Any = None) -> dict[str, Any]:
        return train_module(self.module, self.params, train, val, blur_jpeg_augment(self.params.seed), self, progress)
