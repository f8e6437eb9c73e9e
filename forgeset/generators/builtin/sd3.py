"""Stable Diffusion 3-shaped tiny model: tiny-sd3 (MMDiT transformer, flow matching, CLIP x2 + T5).

Its offline T5 parts (tokenizer and encoder), the CLIP text config with token ids that match the
character-level CLIP tokenizer, and the 16-channel flow-matching VAE are shared with flux.py.
"""

from __future__ import annotations

import string
from pathlib import Path
from typing import Any

from forgeset.generators.builtin import WEIGHT_SEED, register_builtin
from forgeset.generators.builtin.sd import char_clip_tokenizer

# Characters the tiny T5 tokenizer knows (case-sensitive, like T5); anything else is <unk>.
T5_ALPHABET = string.ascii_letters + string.digits + ",.-'"
# T5 ids: <pad>=0, </s>=1, <unk>=2, then the word-start marker and one piece per character, with
# and without the marker (so "cat" is "▁c a t", like sentencepiece's character fallback).
T5_TOKENIZER: dict[str, Any] = {"alphabet": T5_ALPHABET, "model_max_length": 32, "extra_ids": 0}
T5_ENCODER: dict[str, Any] = {
    "vocab_size": 160,  # >= the tokenizer's 4 + 2 * len(T5_ALPHABET) = 136 tokens
    "d_model": 64,
    "d_kv": 16,
    "d_ff": 64,
    "num_layers": 2,
    "num_heads": 4,
    "relative_attention_num_buckets": 8,
    "relative_attention_max_distance": 32,
    "feed_forward_proj": "gated-gelu",  # T5 v1.1, the encoder SD3 and FLUX use
    "pad_token_id": 0,
    "eos_token_id": 1,
    "decoder_start_token_id": 0,
}
# CLIP text encoders whose bos/eos/pad ids are the character-level CLIP tokenizer's, so the pooled
# output is taken at the prompt's end-of-text token.
CLIP_TEXT: dict[str, Any] = {
    "hidden_size": 32,
    "intermediate_size": 37,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "vocab_size": 1000,
    "max_position_embeddings": 77,
    "bos_token_id": 0,
    "eos_token_id": 1,
    "pad_token_id": 1,
    "projection_dim": 32,
}
CLIP_MAX_LENGTH = 77  # char_clip_tokenizer's model_max_length

_TRANSFORMER: dict[str, Any] = {
    "sample_size": 16,  # native size 16 * 8 = 128 px
    "patch_size": 2,
    "in_channels": 16,
    "out_channels": 16,
    "num_layers": 2,
    "attention_head_dim": 8,
    "num_attention_heads": 4,
    "joint_attention_dim": T5_ENCODER["d_model"],  # CLIP (32 + 32) is padded to the T5 width
    "caption_projection_dim": 32,  # = num_attention_heads * attention_head_dim
    "pooled_projection_dim": 2 * CLIP_TEXT["projection_dim"],
    "pos_embed_max_size": 64,  # up to 64 * 2 * 8 = 1024 px
}
# SD3's VAE: 16 latent channels, no quant convs, shift and scale from stable-diffusion-3-medium.
_VAE: dict[str, Any] = {
    "block_out_channels": [16, 16, 32, 32],
    "down_block_types": ["DownEncoderBlock2D"] * 4,
    "up_block_types": ["UpDecoderBlock2D"] * 4,
    "latent_channels": 16,
    "layers_per_block": 1,
    "norm_num_groups": 8,
    "sample_size": 128,
    "use_quant_conv": False,
    "use_post_quant_conv": False,
    "shift_factor": 0.0609,
    "scaling_factor": 1.5305,
}
_SCHEDULER: dict[str, Any] = {"num_train_timesteps": 1000, "shift": 3.0}


def t5_tokenizer() -> Any:
    """A character-level T5 (Unigram) tokenizer built offline; saved as tokenizer.json."""
    from transformers import T5Tokenizer

    vocab = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("▁", -2.0)]
    for char in T5_TOKENIZER["alphabet"]:
        vocab += [("▁" + char, -3.0), (char, -3.0)]
    return T5Tokenizer(
        vocab=vocab, extra_ids=T5_TOKENIZER["extra_ids"], model_max_length=T5_TOKENIZER["model_max_length"]
    )


def t5_encoder(seed_offset: int) -> Any:
    """A tiny random T5 encoder (seeded with WEIGHT_SEED + seed_offset)."""
    import torch
    from transformers import T5Config, T5EncoderModel

    torch.manual_seed(WEIGHT_SEED + seed_offset)
    return T5EncoderModel(T5Config(**T5_ENCODER))


def clip_text_encoder(seed_offset: int, with_projection: bool) -> Any:
    """A tiny random CLIP text encoder (CLIPTextModelWithProjection when `with_projection`)."""
    import torch
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    torch.manual_seed(WEIGHT_SEED + seed_offset)
    model_cls = CLIPTextModelWithProjection if with_projection else CLIPTextModel
    return model_cls(CLIPTextConfig(**CLIP_TEXT))


def flow_vae(seed_offset: int, config: dict[str, Any]) -> Any:
    """A tiny random AutoencoderKL for flow-matching latents (seeded with WEIGHT_SEED + seed_offset)."""
    import torch
    from diffusers import AutoencoderKL

    torch.manual_seed(WEIGHT_SEED + seed_offset)
    return AutoencoderKL(**config)


def _build_tiny_sd3(scratch: Path) -> Any:
    import torch
    from diffusers import FlowMatchEulerDiscreteScheduler, SD3Transformer2DModel, StableDiffusion3Pipeline

    torch.manual_seed(WEIGHT_SEED)
    transformer = SD3Transformer2DModel(**_TRANSFORMER)
    return StableDiffusion3Pipeline(
        transformer=transformer,
        vae=flow_vae(1, _VAE),
        scheduler=FlowMatchEulerDiscreteScheduler(**_SCHEDULER),
        text_encoder=clip_text_encoder(2, with_projection=True),
        tokenizer=char_clip_tokenizer(scratch / "tok"),
        text_encoder_2=clip_text_encoder(3, with_projection=True),
        tokenizer_2=char_clip_tokenizer(scratch / "tok_2"),
        text_encoder_3=t5_encoder(4),
        tokenizer_3=t5_tokenizer(),
        image_encoder=None,
        feature_extractor=None,
    )


register_builtin(
    "tiny-sd3",
    _build_tiny_sd3,
    {
        "transformer": _TRANSFORMER,
        "vae": _VAE,
        "scheduler": _SCHEDULER,
        "clip_text": CLIP_TEXT,
        "clip_max_length": CLIP_MAX_LENGTH,
        "t5_encoder": T5_ENCODER,
        "t5_tokenizer": T5_TOKENIZER,
    },
)
