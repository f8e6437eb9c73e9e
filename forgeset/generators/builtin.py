"""Builtin tiny random-weight diffusers models for offline runs and tests.

A `builtin:tiny-*` model is built from a config with a fixed seed, saved once to a local cache
as safetensors and then loaded through the same `from_pretrained` path as a real Hub model
(diffusers' own tests do this with `get_dummy_components`). The same library versions give the
same weights on every machine; the recipe hash is recorded as the model's revision.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypedDict

BUILTIN_PREFIX = "builtin:"
_WEIGHT_SEED = 0

# Characters the tiny tokenizer knows; anything else maps to the unknown token.
_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789,.-'"

_UNET = {
    "sample_size": 16,
    "block_out_channels": [32, 64],
    "layers_per_block": 1,
    "down_block_types": ["CrossAttnDownBlock2D", "DownBlock2D"],
    "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D"],
    "cross_attention_dim": 32,
    "attention_head_dim": 8,
    "norm_num_groups": 8,
}
_VAE = {
    "block_out_channels": [16, 16, 32, 32],
    "down_block_types": ["DownEncoderBlock2D"] * 4,
    "up_block_types": ["UpDecoderBlock2D"] * 4,
    "latent_channels": 4,
    "layers_per_block": 1,
    "norm_num_groups": 8,
    "sample_size": 128,
}


class _TextConfig(TypedDict):
    """The `CLIPTextConfig` keyword arguments of the tiny text encoder."""

    hidden_size: int
    intermediate_size: int
    num_hidden_layers: int
    num_attention_heads: int
    vocab_size: int
    max_position_embeddings: int


_TEXT: _TextConfig = {
    "hidden_size": 32,
    "intermediate_size": 37,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "vocab_size": 1000,
    "max_position_embeddings": 77,
}
_SCHEDULER = {
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "clip_sample": False,
    "set_alpha_to_one": False,
    "steps_offset": 1,
}


def _cache_root() -> Path:
    """Where builtin models are written: FORGESET_CACHE, else ~/.cache/forgeset."""
    root = os.environ.get("FORGESET_CACHE") or Path.home() / ".cache" / "forgeset"
    return Path(root) / "builtin"


def _versions() -> dict[str, str]:
    import diffusers
    import torch
    import transformers

    return {"diffusers": diffusers.__version__, "torch": torch.__version__, "transformers": transformers.__version__}


def _tokenizer(folder: Path) -> Any:
    """A character-level CLIP tokenizer written to `folder` (no Hub download)."""
    from transformers import CLIPTokenizer

    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for char in _ALPHABET:
        vocab[char] = len(vocab)
        vocab[char + "</w>"] = len(vocab)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    return CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"), model_max_length=77)


def _text_components(scratch: Path) -> dict[str, Any]:
    import torch
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(_WEIGHT_SEED + 2)
    return {
        "text_encoder": CLIPTextModel(CLIPTextConfig(**_TEXT)),
        "tokenizer": _tokenizer(scratch / "tok"),
    }


def _vae() -> Any:
    import torch
    from diffusers import AutoencoderKL

    torch.manual_seed(_WEIGHT_SEED + 1)
    return AutoencoderKL(**_VAE)


def _scheduler() -> Any:
    from diffusers import DDIMScheduler

    return DDIMScheduler(**_SCHEDULER)


def _build_tiny_sd(scratch: Path, in_channels: int, pipeline_cls: str) -> Any:
    import diffusers
    import torch
    from diffusers import UNet2DConditionModel

    torch.manual_seed(_WEIGHT_SEED)
    unet = UNet2DConditionModel(in_channels=in_channels, out_channels=4, **_UNET)
    return getattr(diffusers, pipeline_cls)(
        unet=unet,
        vae=_vae(),
        scheduler=_scheduler(),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
        **_text_components(scratch),
    )


def _build_tiny_vae(scratch: Path) -> Any:
    return _vae()


_RECIPES: dict[str, tuple[Callable[[Path], Any], dict[str, Any]]] = {
    "tiny-sd": (
        lambda scratch: _build_tiny_sd(scratch, 4, "StableDiffusionPipeline"),
        {"unet": _UNET, "vae": _VAE, "text": _TEXT, "scheduler": _SCHEDULER, "in_channels": 4},
    ),
    "tiny-sd-inpaint": (
        lambda scratch: _build_tiny_sd(scratch, 9, "StableDiffusionInpaintPipeline"),
        {"unet": _UNET, "vae": _VAE, "text": _TEXT, "scheduler": _SCHEDULER, "in_channels": 9},
    ),
    "tiny-vae": (_build_tiny_vae, {"vae": _VAE}),
}


def builtin_names() -> list[str]:
    """The builtin model ids, with their `builtin:` prefix."""
    return [BUILTIN_PREFIX + name for name in _RECIPES]


def is_builtin(model: str) -> bool:
    """Whether a spec's model string names a builtin tiny model."""
    return model.startswith(BUILTIN_PREFIX)


def builtin_revision(model: str) -> str:
    """The recipe hash recorded as the builtin model's revision (config, seed, library versions)."""
    name = model.removeprefix(BUILTIN_PREFIX)
    if name not in _RECIPES:
        raise KeyError(f"unknown builtin model {model!r}; known: {', '.join(builtin_names())}")
    recipe = {"name": name, "seed": _WEIGHT_SEED, "config": _RECIPES[name][1], "versions": _versions()}
    digest = hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()
    return f"recipe-{digest[:16]}"


def materialize_builtin(model: str) -> Path:
    """Build the builtin model once into the cache (atomically) and return its folder."""
    name = model.removeprefix(BUILTIN_PREFIX)
    revision = builtin_revision(model)
    target = _cache_root() / f"{name}-{revision}"
    if (target / ".complete").exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=target.parent))
    try:
        built = _RECIPES[name][0](scratch / "parts")
        built.save_pretrained(scratch / "model", safe_serialization=True)
        (scratch / "model" / ".complete").write_text(revision)
        try:
            os.rename(scratch / "model", target)
        except OSError:
            if not (target / ".complete").exists():  # lost a race only if the winner finished
                raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return target
