"""CLIP score: cosine similarity of the image and its prompt in CLIP space (Hessel et al., 2021, without the 2.5 w)."""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field

from forgeset.quality.base import QualityScorer, ScorerParams, quality_scorers
from forgeset.quality.clip_embedder import ClipEmbedder


@quality_scorers.register("clip-score")
class ClipScore(QualityScorer):
    """Text-image agreement in [-1, 1]; a threshold such as min 0.2 drops off-prompt images."""

    class Params(ScorerParams):
        type: Literal["clip-score"] = "clip-score"
        model: str = Field(
            "openai/clip-vit-base-patch32", min_length=1, description="Hub id, folder or builtin:tiny-clip"
        )
        revision: str | None = None

    params: Params
    needs_prompts = True

    def setup(self) -> None:
        if not hasattr(self, "embedder"):
            self.embedder = ClipEmbedder(self.params.model, self.params.revision)

    def score(self, pixels: np.ndarray, prompts: list[str] | None = None) -> np.ndarray:
        self._check(pixels, prompts)
        self.setup()
        assert prompts is not None  # _check enforces it
        out = []
        for start in range(0, len(pixels), self.params.batch_size):
            end = start + self.params.batch_size
            images = self.embedder.images(pixels[start:end])
            texts = self.embedder.texts(prompts[start:end])
            out.append((images * texts).sum(axis=1))
        return np.concatenate(out) if out else np.zeros(0)
