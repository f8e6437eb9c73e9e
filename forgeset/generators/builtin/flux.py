"""FLUX.1-dev-shaped tiny model: tiny-flux (guidance-distilled transformer, flow matching, CLIP + T5).

`guidance_embeds=True` as in FLUX.1-dev: `guidance_scale` is fed to the transformer as an
embedding (one forward pass per step, no classifier-free guidance); true CFG only runs when a
call passes `true_cfg_scale > 1` together with a `negative_prompt`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from forgeset.generators.builtin import WEIGHT_SEED, register_builtin
from forgeset.generators.builtin.sd import char_clip_tokenizer
from forgeset.generators.builtin.sd3 import (
    CLIP_MAX_LENGTH,
    CLIP_TEXT,
    T5_ENCODER,
    T5_TOKENIZER,
    clip_text_encoder,
    flow_vae,
    t5_encoder,
    t5_tokenizer,
)

# FLUX packs 2x2 latent patches into tokens, so in_channels = 4 * the VAE's latent channels.
_TRANSFORMER: dict[str, Any] = {
    "patch_size": 1,
    "in_channels": 64,
    "num_layers": 1,
    "num_single_layers": 2,
    "attention_head_dim": 16,
    "num_attention_heads": 2,
    "joint_attention_dim": T5_ENCODER["d_model"],
    "pooled_projection_dim": CLIP_TEXT["hidden_size"],  # CLIPTextModel's pooled output
    "guidance_embeds": True,  # FLUX.1-dev: distilled guidance
    "axes_dims_rope": [4, 6, 6],  # sums to attention_head_dim
}
# FLUX's VAE: 16 latent channels, no quant convs, shift and scale from FLUX.1-dev.
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
    "shift_factor": 0.1159,
    "scaling_factor": 0.3611,
}
# FLUX.1-dev's scheduler: resolution-dependent shift.
_SCHEDULER: dict[str, Any] = {
    "num_train_timesteps": 1000,
    "shift": 3.0,
    "use_dynamic_shifting": True,
    "base_shift": 0.5,
    "max_shift": 1.15,
    "base_image_seq_len": 256,
    "max_image_seq_len": 4096,
}


def _build_tiny_flux(scratch: Path) -> Any:
    import torch
    from diffusers import FlowMatchEulerDiscreteScheduler, FluxPipeline, FluxTransformer2DModel

    torch.manual_seed(WEIGHT_SEED)
    transformer = FluxTransformer2DModel(**_TRANSFORMER)
    return FluxPipeline(
        transformer=transformer,
        vae=flow_vae(1, _VAE),
        scheduler=FlowMatchEulerDiscreteScheduler(**_SCHEDULER),
        text_encoder=clip_text_encoder(2, with_projection=False),
        tokenizer=char_clip_tokenizer(scratch / "tok"),
        text_encoder_2=t5_encoder(3),
        tokenizer_2=t5_tokenizer(),
        image_encoder=None,
        feature_extractor=None,
    )


register_builtin(
    "tiny-flux",
    _build_tiny_flux,
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
