"""CLIP image and text embeddings (transformers) for the CLIP-based quality metrics.

Loaded by Hub id, folder or `builtin:tiny-clip` with `use_safetensors=True`, never remote code.
Images are resized to the model's square input in torch (bicubic, antialiased) and normalized
with CLIP's statistics, so no image processor (and no torchvision) is needed.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from forgeset.detectors.backbone import CLIP_MEAN, CLIP_STD
from forgeset.quality.builtin_models import resolve_model


def _tensor(output: Any) -> Any:
    """The embedding tensor, whether transformers returns it bare or in a model output."""
    return output if hasattr(output, "norm") else output.pooler_output


class ClipEmbedder:
    """L2-normalized CLIP embeddings of uint8 image batches and of prompts."""

    def __init__(self, model: str, revision: str | None = None) -> None:
        from transformers import CLIPModel, CLIPTokenizer

        folder = resolve_model(model)
        pinned = revision or "main"  # the Hub's default branch; ignored for a folder
        self.model = CLIPModel.from_pretrained(folder, revision=pinned, use_safetensors=True).eval()
        self.tokenizer = CLIPTokenizer.from_pretrained(folder, revision=pinned)
        self.size = int(self.model.config.vision_config.image_size)
        self.max_length = int(self.model.config.text_config.max_position_embeddings)

    def images(self, pixels: np.ndarray) -> np.ndarray:
        """N x D unit vectors for uint8 N x H x W x 3 images."""
        import torch
        import torch.nn.functional as F  # noqa: N812

        batch = torch.from_numpy(np.ascontiguousarray(pixels)).permute(0, 3, 1, 2).float() / 255.0
        batch = F.interpolate(batch, size=(self.size, self.size), mode="bicubic", antialias=True, align_corners=False)
        mean = torch.tensor(CLIP_MEAN).view(1, 3, 1, 1)
        std = torch.tensor(CLIP_STD).view(1, 3, 1, 1)
        with torch.no_grad():
            features = _tensor(self.model.get_image_features(pixel_values=(batch.clamp(0, 1) - mean) / std))
        return torch.nn.functional.normalize(features, dim=-1).double().numpy()

    def texts(self, prompts: list[str]) -> np.ndarray:
        """N x D unit vectors for prompts (truncated to the text model's length)."""
        import torch

        tokens = self.tokenizer(prompts, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt")
        with torch.no_grad():
            features = _tensor(
                self.model.get_text_features(input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"])
            )
        return torch.nn.functional.normalize(features, dim=-1).double().numpy()
