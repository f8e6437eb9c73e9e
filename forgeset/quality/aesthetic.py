"""Aesthetic score: an MLP head on unit CLIP image embeddings, as LAION's aesthetic predictor is built.

The head is a safetensors file of `layers.N.weight` / `layers.N.bias` (N need not be contiguous:
LAION's head interleaves dropout, so its linear layers are 0, 2, 4, 6, 7), linear layers applied in
index order with no activation between them by default, as in LAION's head; in a
folder given by path or `builtin:tiny-aesthetic` (a random head for offline runs and tests, paired
with `builtin:tiny-clip`). A published head stored as a pickle must be converted to safetensors
first: forgeset never unpickles.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import Field

from forgeset.quality.base import QualityScorer, ScorerParams, quality_scorers
from forgeset.quality.builtin_models import HEAD_FILE, resolve_model
from forgeset.quality.clip_embedder import ClipEmbedder


@quality_scorers.register("aesthetic")
class Aesthetic(QualityScorer):
    """The head's output for each image's CLIP embedding (LAION's heads give about 1-10)."""

    class Params(ScorerParams):
        type: Literal["aesthetic"] = "aesthetic"
        model: str = Field("openai/clip-vit-large-patch14", min_length=1, description="CLIP: Hub id, folder or builtin")
        head: str = Field(min_length=1, description=f"folder with {HEAD_FILE}, or builtin:tiny-aesthetic")
        revision: str | None = None
        activation: Literal["none", "relu"] = Field("none", description="between the head's linear layers")

    params: Params

    def setup(self) -> None:
        if hasattr(self, "embedder"):
            return
        from safetensors.numpy import load_file

        self.embedder = ClipEmbedder(self.params.model, self.params.revision)
        path = Path(resolve_model(self.params.head)) / HEAD_FILE
        if not path.is_file():
            raise FileNotFoundError(f"aesthetic head: no {HEAD_FILE} in {self.params.head!r}")
        tensors = load_file(str(path))
        try:
            indices = sorted({int(key.split(".")[1]) for key in tensors if key.startswith("layers.")})
            self.layers = [
                (tensors[f"layers.{i}.weight"].astype(np.float64), tensors[f"layers.{i}.bias"].astype(np.float64))
                for i in indices
            ]
        except (KeyError, ValueError) as err:
            raise ValueError(
                f"aesthetic head {self.params.head!r}: {HEAD_FILE} must hold layers.N.weight and layers.N.bias "
                f"for every linear layer N ({type(err).__name__}: {err})"
            ) from None
        if not self.layers:
            raise ValueError(f"aesthetic head {self.params.head!r}: {HEAD_FILE} has no layers.N tensors")
        width = self.embedder.images(np.zeros((1, 8, 8, 3), np.uint8)).shape[1]
        if self.layers[0][0].shape[1] != width or self.layers[-1][0].shape[0] != 1:
            raise ValueError(
                f"aesthetic head {self.params.head!r} maps {self.layers[0][0].shape[1]} -> "
                f"{self.layers[-1][0].shape[0]}; the CLIP model gives {width}-d embeddings and the head must end in 1"
            )

    def score(self, pixels: np.ndarray, prompts: list[str] | None = None) -> np.ndarray:
        self._check(pixels, prompts)
        self.setup()
        out = []
        for start in range(0, len(pixels), self.params.batch_size):
            hidden = self.embedder.images(pixels[start : start + self.params.batch_size])
            for index, (weight, bias) in enumerate(self.layers):
                hidden = hidden @ weight.T + bias
                if index < len(self.layers) - 1 and self.params.activation == "relu":
                    hidden = np.maximum(hidden, 0.0)
            out.append(hidden[:, 0])
        return np.concatenate(out) if out else np.zeros(0)
