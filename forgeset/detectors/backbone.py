"""Frozen vision backbones for the training-free and linear-probe detectors (transformers).

Loaded with `AutoModel.from_pretrained(..., use_safetensors=True)` by Hub id or local folder; never
`trust_remote_code`. Images are resized and normalized inside the module, so the whole detector
stays differentiable (usable as an attack surrogate).
"""

from __future__ import annotations

from typing import Any

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def load_backbone(model: str, revision: str | None = None) -> Any:
    """A frozen module mapping images N x 3 x H x W in [0, 1] to pooled features N x D."""
    import torch
    import torch.nn.functional as F  # noqa: N812
    from torch import nn
    from transformers import AutoModel

    network = AutoModel.from_pretrained(model, revision=revision, use_safetensors=True)
    network.eval().requires_grad_(False)
    vision = network.vision_model if hasattr(network, "vision_model") else network
    size = int(vision.config.image_size)

    class Backbone(nn.Module):
        mean: torch.Tensor
        std: torch.Tensor

        def __init__(self) -> None:
            super().__init__()
            self.network = vision
            self.register_buffer("mean", torch.tensor(CLIP_MEAN).view(1, 3, 1, 1))
            self.register_buffer("std", torch.tensor(CLIP_STD).view(1, 3, 1, 1))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
            return self.network(pixel_values=(x - self.mean) / self.std).pooler_output

    return Backbone()
