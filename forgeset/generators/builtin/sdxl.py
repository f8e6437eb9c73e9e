"""SDXL-shaped tiny models: tiny-sdxl, tiny-sdxl-turbo, and the SD1.x-shaped consistency model tiny-lcm.

tiny-sdxl has SDXL's two CLIP text encoders (a plain one and one with a projection, whose pooled
output feeds the UNet's "text_time" added conditioning together with the size/crop
micro-conditioning), its UNet layout (no attention in the first block, linear projections,
deeper transformers lower down) and its Euler scheduler. tiny-sdxl-turbo keeps the architecture,
VAE and text encoders (as SDXL-Turbo does) with its own UNet weights and SDXL-Turbo's scheduler
(ancestral Euler, trailing timesteps), to be run with guidance_scale 0 and 1-4 steps. tiny-lcm is
a Latent Consistency Model: an SD1.x-shaped UNet whose timestep embedding also takes the guidance
scale (`time_cond_proj_dim`), with an LCMScheduler; it loads as LatentConsistencyModelPipeline.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from forgeset.generators.builtin import WEIGHT_SEED, register_builtin
from forgeset.generators.builtin.sd import _ALPHABET, _UNET, _VAE, char_clip_tokenizer, tiny_vae

# Token ids of the character-level tokenizer: <|startoftext|> = 0, <|endoftext|> = 1 (also padding).
# The pooled output of CLIPTextModelWithProjection is read at the first eos token, so the text
# configs must name the tokenizer's ids.
_TOKEN_IDS = {"bos_token_id": 0, "eos_token_id": 1, "pad_token_id": 1}

_TEXT_1_HIDDEN = 32
_TEXT_2_HIDDEN = 32
_TEXT_2_PROJECTION = 32
# SDXL's first encoder (CLIP ViT-L) gives its penultimate hidden states only; tiny-lcm uses the
# same shape as its only encoder (SD1.x's).
_SDXL_TEXT_1 = {
    "hidden_size": _TEXT_1_HIDDEN,
    "intermediate_size": 37,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "vocab_size": 1000,
    "max_position_embeddings": 77,
    "hidden_act": "quick_gelu",
    **_TOKEN_IDS,
}
# The second (OpenCLIP bigG) also gives the projected pooled embedding.
_SDXL_TEXT_2 = {
    "hidden_size": _TEXT_2_HIDDEN,
    "intermediate_size": 37,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "vocab_size": 1000,
    "max_position_embeddings": 77,
    "hidden_act": "gelu",
    "projection_dim": _TEXT_2_PROJECTION,
    **_TOKEN_IDS,
}
_ADDITION_TIME_EMBED_DIM = 8
_SDXL_UNET = {
    "sample_size": 16,  # native size 16 * 8 = 128 px
    "in_channels": 4,
    "out_channels": 4,
    "block_out_channels": [32, 64],
    "layers_per_block": 1,
    "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D"],
    "up_block_types": ["CrossAttnUpBlock2D", "UpBlock2D"],
    "attention_head_dim": [2, 4],
    "transformer_layers_per_block": [1, 2],
    "use_linear_projection": True,
    "norm_num_groups": 8,
    # The two encoders' hidden states are concatenated along the feature axis.
    "cross_attention_dim": _TEXT_1_HIDDEN + _TEXT_2_HIDDEN,
    "addition_embed_type": "text_time",
    "addition_time_embed_dim": _ADDITION_TIME_EMBED_DIM,
    # original size, crop top-left and target size (6 numbers) plus the pooled text embedding.
    "projection_class_embeddings_input_dim": 6 * _ADDITION_TIME_EMBED_DIM + _TEXT_2_PROJECTION,
}
# SDXL-Turbo generates at half SDXL's native size (512 vs 1024 px); tiny: 64 vs 128 px.
_TURBO_UNET = {**_SDXL_UNET, "sample_size": 8}
_BETAS = {"beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear"}
_SDXL_SCHEDULER = {
    **_BETAS,
    "steps_offset": 1,
    "timestep_spacing": "leading",
    "prediction_type": "epsilon",
    "interpolation_type": "linear",
    "use_karras_sigmas": False,
}
_TURBO_SCHEDULER = {**_BETAS, "steps_offset": 1, "timestep_spacing": "trailing", "prediction_type": "epsilon"}

# LCM: SD1.x-shaped UNet whose time embedding also takes the guidance-scale embedding.
_LCM_UNET = {**_UNET, "in_channels": 4, "out_channels": 4, "time_cond_proj_dim": 32}
_LCM_SCHEDULER = {
    **_BETAS,
    "clip_sample": False,
    "set_alpha_to_one": True,
    "steps_offset": 1,
    "prediction_type": "epsilon",
    "original_inference_steps": 50,
    "timestep_scaling": 10.0,
    "timestep_spacing": "leading",
}

# Seed offsets: the distilled UNets get their own weights; text encoders and VAE are shared.
_SEED_SDXL_UNET = 0
_SEED_TEXT_1 = 3
_SEED_TEXT_2 = 4
_SEED_TURBO_UNET = 10
_SEED_LCM_UNET = 11
_SEED_LCM_TEXT = 12


def _clip_text_model(config: dict[str, Any], seed: int, with_projection: bool = False) -> Any:
    import torch
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    torch.manual_seed(WEIGHT_SEED + seed)
    model_cls = CLIPTextModelWithProjection if with_projection else CLIPTextModel
    return model_cls(CLIPTextConfig(**config))


def _sdxl_text_components(scratch: Path) -> dict[str, Any]:
    return {
        "text_encoder": _clip_text_model(_SDXL_TEXT_1, _SEED_TEXT_1),
        "tokenizer": char_clip_tokenizer(scratch / "tok"),
        "text_encoder_2": _clip_text_model(_SDXL_TEXT_2, _SEED_TEXT_2, with_projection=True),
        "tokenizer_2": char_clip_tokenizer(scratch / "tok2"),
    }


def _build_sdxl(scratch: Path, unet_config: dict[str, Any], unet_seed: int, scheduler: Any) -> Any:
    import torch
    from diffusers import StableDiffusionXLPipeline, UNet2DConditionModel

    torch.manual_seed(WEIGHT_SEED + unet_seed)
    unet = UNet2DConditionModel(**unet_config)
    return StableDiffusionXLPipeline(
        unet=unet,
        vae=tiny_vae(),
        scheduler=scheduler,
        image_encoder=None,
        feature_extractor=None,
        force_zeros_for_empty_prompt=True,
        add_watermarker=False,
        **_sdxl_text_components(scratch),
    )


def _build_tiny_sdxl(scratch: Path) -> Any:
    from diffusers import EulerDiscreteScheduler

    return _build_sdxl(scratch, _SDXL_UNET, _SEED_SDXL_UNET, EulerDiscreteScheduler(**_SDXL_SCHEDULER))


def _build_tiny_sdxl_turbo(scratch: Path) -> Any:
    from diffusers import EulerAncestralDiscreteScheduler

    return _build_sdxl(scratch, _TURBO_UNET, _SEED_TURBO_UNET, EulerAncestralDiscreteScheduler(**_TURBO_SCHEDULER))


def _build_tiny_lcm(scratch: Path) -> Any:
    import torch
    from diffusers import LatentConsistencyModelPipeline, LCMScheduler, UNet2DConditionModel

    torch.manual_seed(WEIGHT_SEED + _SEED_LCM_UNET)
    unet = UNet2DConditionModel(**_LCM_UNET)
    return LatentConsistencyModelPipeline(
        unet=unet,
        vae=tiny_vae(),
        scheduler=LCMScheduler(**_LCM_SCHEDULER),
        safety_checker=None,
        feature_extractor=None,
        image_encoder=None,
        requires_safety_checker=False,
        text_encoder=_clip_text_model(_SDXL_TEXT_1, _SEED_LCM_TEXT),
        tokenizer=char_clip_tokenizer(scratch / "tok"),
    )


_TOKENIZER = {"alphabet": _ALPHABET, "model_max_length": 77}
_SDXL_TEXT = {
    "text_1": _SDXL_TEXT_1,
    "text_2": _SDXL_TEXT_2,
    "text_seeds": [_SEED_TEXT_1, _SEED_TEXT_2],
    "tokenizer": _TOKENIZER,
}
register_builtin(
    "tiny-sdxl",
    _build_tiny_sdxl,
    {
        **_SDXL_TEXT,
        "unet": _SDXL_UNET,
        "unet_seed": _SEED_SDXL_UNET,
        "vae": _VAE,
        "scheduler": {"class": "EulerDiscreteScheduler", **_SDXL_SCHEDULER},
    },
)
register_builtin(
    "tiny-sdxl-turbo",
    _build_tiny_sdxl_turbo,
    {
        **_SDXL_TEXT,
        "unet": _TURBO_UNET,
        "unet_seed": _SEED_TURBO_UNET,
        "vae": _VAE,
        "scheduler": {"class": "EulerAncestralDiscreteScheduler", **_TURBO_SCHEDULER},
    },
)
register_builtin(
    "tiny-lcm",
    _build_tiny_lcm,
    {
        "unet": _LCM_UNET,
        "unet_seed": _SEED_LCM_UNET,
        "vae": _VAE,
        "text": _SDXL_TEXT_1,
        "text_seed": _SEED_LCM_TEXT,
        "tokenizer": _TOKENIZER,
        "scheduler": {"class": "LCMScheduler", **_LCM_SCHEDULER},
    },
)


# SDXL's architecture at full size (UNet 2.57B parameters, CLIP ViT-L and OpenCLIP bigG text
# encoders, the SD VAE), random weights: the real checkpoint's FLOPs for benchmarks; nothing is
# downloaded. Materializing it writes about 14 GB of float32 weights: meant for GPU machines.
_SDXL_FULL_UNET = {
    "sample_size": 128,
    "block_out_channels": [320, 640, 1280],
    "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
    "up_block_types": ["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"],
    "transformer_layers_per_block": [1, 2, 10],
    "attention_head_dim": [5, 10, 20],
    "cross_attention_dim": 2048,
    "use_linear_projection": True,
    "addition_embed_type": "text_time",
    "addition_time_embed_dim": 256,
    "projection_class_embeddings_input_dim": 2816,
}
_SDXL_FULL_TEXT_1 = {
    "vocab_size": 1000,
    "hidden_size": 768,
    "intermediate_size": 3072,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "max_position_embeddings": 77,
    "hidden_act": "quick_gelu",
    **_TOKEN_IDS,
}
_SDXL_FULL_TEXT_2 = {
    "vocab_size": 1000,
    "hidden_size": 1280,
    "intermediate_size": 5120,
    "num_hidden_layers": 32,
    "num_attention_heads": 20,
    "max_position_embeddings": 77,
    "hidden_act": "gelu",
    "projection_dim": 1280,
    **_TOKEN_IDS,
}
_SDXL_FULL_VAE = {
    "block_out_channels": [128, 256, 512, 512],
    "down_block_types": ["DownEncoderBlock2D"] * 4,
    "up_block_types": ["UpDecoderBlock2D"] * 4,
    "latent_channels": 4,
    "sample_size": 1024,
    "scaling_factor": 0.13025,
}


def build_sdxl_random(scratch: Path) -> Any:
    """SDXL base at full size with seeded random weights."""
    import torch
    from diffusers import AutoencoderKL, EulerDiscreteScheduler, StableDiffusionXLPipeline, UNet2DConditionModel

    torch.manual_seed(WEIGHT_SEED + 30)
    unet = UNet2DConditionModel(**_SDXL_FULL_UNET)
    torch.manual_seed(WEIGHT_SEED + 31)
    vae = AutoencoderKL(**_SDXL_FULL_VAE)
    return StableDiffusionXLPipeline(
        unet=unet,
        vae=vae,
        scheduler=EulerDiscreteScheduler(**_SDXL_SCHEDULER),
        text_encoder=_clip_text_model(_SDXL_FULL_TEXT_1, 32),
        tokenizer=char_clip_tokenizer(scratch / "tok"),
        text_encoder_2=_clip_text_model(_SDXL_FULL_TEXT_2, 33, with_projection=True),
        tokenizer_2=char_clip_tokenizer(scratch / "tok2"),
        image_encoder=None,
        feature_extractor=None,
        force_zeros_for_empty_prompt=True,
        add_watermarker=False,
    )


register_builtin(
    "sdxl-random",
    build_sdxl_random,
    {
        "unet": _SDXL_FULL_UNET,
        "text_1": _SDXL_FULL_TEXT_1,
        "text_2": _SDXL_FULL_TEXT_2,
        "vae": _SDXL_FULL_VAE,
        "scheduler": _SDXL_SCHEDULER,
    },
)
