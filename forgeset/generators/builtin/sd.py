"""Stable Diffusion 1.x-shaped tiny models: tiny-sd, tiny-sd-inpaint and the tiny VAE.

Their parts (the character-level CLIP tokenizer, text encoder, VAE, scheduler) are shared with
other families' files.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, TypedDict

from forgeset.generators.builtin import WEIGHT_SEED, register_builtin

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


def char_clip_tokenizer(folder: Path) -> Any:
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


def clip_text_components(scratch: Path) -> dict[str, Any]:
    import torch
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(WEIGHT_SEED + 2)
    return {
        "text_encoder": CLIPTextModel(CLIPTextConfig(**_TEXT)),
        "tokenizer": char_clip_tokenizer(scratch / "tok"),
    }


def tiny_vae() -> Any:
    import torch
    from diffusers import AutoencoderKL

    torch.manual_seed(WEIGHT_SEED + 1)
    return AutoencoderKL(**_VAE)


def ddim_scheduler() -> Any:
    from diffusers import DDIMScheduler

    return DDIMScheduler(**_SCHEDULER)


def _build_tiny_sd(scratch: Path, in_channels: int, pipeline_cls: str) -> Any:
    import diffusers
    import torch
    from diffusers import UNet2DConditionModel

    torch.manual_seed(WEIGHT_SEED)
    unet = UNet2DConditionModel(in_channels=in_channels, out_channels=4, **_UNET)
    return getattr(diffusers, pipeline_cls)(
        unet=unet,
        vae=tiny_vae(),
        scheduler=ddim_scheduler(),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
        **clip_text_components(scratch),
    )


def _build_tiny_vae(scratch: Path) -> Any:
    return tiny_vae()


register_builtin(
    "tiny-sd",
    lambda scratch: _build_tiny_sd(scratch, 4, "StableDiffusionPipeline"),
    {"unet": _UNET, "vae": _VAE, "text": _TEXT, "scheduler": _SCHEDULER, "in_channels": 4},
)
register_builtin(
    "tiny-sd-inpaint",
    lambda scratch: _build_tiny_sd(scratch, 9, "StableDiffusionInpaintPipeline"),
    {"unet": _UNET, "vae": _VAE, "text": _TEXT, "scheduler": _SCHEDULER, "in_channels": 9},
)
register_builtin("tiny-vae", _build_tiny_vae, {"vae": _VAE})


# Stable Diffusion 1.5's architecture at full size, random weights: the FLOPs (and so the speed)
# of the real checkpoint, with nothing downloaded. For benchmarks and the real-size code path.
_SD15_UNET = {"sample_size": 64, "cross_attention_dim": 768}  # UNet2DConditionModel's defaults are SD1.x's
_SD15_VAE = {
    "block_out_channels": [128, 256, 512, 512],
    "down_block_types": ["DownEncoderBlock2D"] * 4,
    "up_block_types": ["UpDecoderBlock2D"] * 4,
    "latent_channels": 4,
    "sample_size": 512,
}
_SD15_TEXT: dict[str, Any] = {
    "vocab_size": 1000,  # the character tokenizer's ids; the real CLIP vocabulary only adds embedding rows
    "hidden_size": 768,
    "intermediate_size": 3072,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "max_position_embeddings": 77,
    "hidden_act": "quick_gelu",
    "bos_token_id": 0,
    "eos_token_id": 1,
    "pad_token_id": 1,
}


def build_sd15_random(scratch: Path) -> Any:
    """SD1.5's UNet (860M parameters), VAE and CLIP ViT-L text encoder, seeded random weights."""
    import torch
    from diffusers import AutoencoderKL, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(WEIGHT_SEED + 20)
    unet = UNet2DConditionModel(**_SD15_UNET)
    torch.manual_seed(WEIGHT_SEED + 21)
    vae = AutoencoderKL(**_SD15_VAE)
    torch.manual_seed(WEIGHT_SEED + 22)
    text_encoder = CLIPTextModel(CLIPTextConfig(**_SD15_TEXT))
    return StableDiffusionPipeline(
        unet=unet,
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=char_clip_tokenizer(scratch / "tok"),
        scheduler=ddim_scheduler(),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )


register_builtin(
    "sd15-random",
    build_sd15_random,
    {"unet": _SD15_UNET, "vae": _SD15_VAE, "text": _SD15_TEXT, "scheduler": _SCHEDULER},
)
