"""Builtin tiny random models for the quality metrics (`builtin:tiny-clip`, `builtin:tiny-aesthetic`).

As with the builtin generators, each is built from a config with a fixed seed, written once as
safetensors into the cache (FORGESET_CACHE, else ~/.cache/forgeset) by forgeset.core.builtin_models
and then loaded through the same path as a real model. They are registered with kind "quality", so
the generators' builtin list (what `generate` offers) does not show them.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

from forgeset.core.builtin_models import (
    WEIGHT_SEED,
    builtin_revision,
    is_builtin,
    materialize_builtin,
    register_builtin_recipe,
)
from forgeset.generators.builtin.sd import char_clip_tokenizer
from forgeset.generators.builtin.sd3 import CLIP_TEXT

HEAD_FILE = "head.safetensors"

TINY_CLIP: dict[str, Any] = {
    # The tiny SD3 family's CLIP text encoder (character tokenizer, pooled at eos), without its projection.
    "text_config": {key: value for key, value in CLIP_TEXT.items() if key != "projection_dim"},
    "vision_config": {
        "hidden_size": 32,
        "intermediate_size": 37,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "image_size": 32,
        "patch_size": 8,
    },
    "projection_dim": 16,
}
TINY_AESTHETIC: dict[str, Any] = {"layers": [TINY_CLIP["projection_dim"], 16, 1]}


def _build_tiny_clip(folder: Path) -> None:
    import torch
    from transformers import CLIPConfig, CLIPModel

    torch.manual_seed(WEIGHT_SEED)
    CLIPModel(CLIPConfig(**TINY_CLIP)).save_pretrained(folder)
    char_clip_tokenizer(folder)


def _build_tiny_aesthetic(folder: Path) -> None:
    import torch
    from safetensors.torch import save_file

    generator = torch.Generator().manual_seed(WEIGHT_SEED)
    sizes = TINY_AESTHETIC["layers"]
    tensors = {}
    for index, (fan_in, fan_out) in enumerate(itertools.pairwise(sizes)):
        tensors[f"layers.{index}.weight"] = torch.randn(fan_out, fan_in, generator=generator) / fan_in**0.5
        tensors[f"layers.{index}.bias"] = torch.zeros(fan_out)
    folder.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(folder / HEAD_FILE))


# Their weights depend on torch and transformers only (no diffusers model among them).
_LIBRARIES = ("torch", "transformers")
register_builtin_recipe("tiny-clip", "quality", _build_tiny_clip, TINY_CLIP, _LIBRARIES)
register_builtin_recipe("tiny-aesthetic", "quality", _build_tiny_aesthetic, TINY_AESTHETIC, _LIBRARIES)


def revision(model: str) -> str:
    """The recorded revision of builtin quality model `model` (its recipe hash)."""
    return builtin_revision(model, "quality")


def resolve_model(model: str) -> str:
    """A Hub id or folder unchanged; a `builtin:` name built once into the cache, as its folder."""
    if not is_builtin(model):
        return model
    return str(materialize_builtin(model, "quality"))
