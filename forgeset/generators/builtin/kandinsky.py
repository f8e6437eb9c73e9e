"""Kandinsky 2.2-shaped tiny model: tiny-kandinsky22, saved as the two-stage combined pipeline.

KandinskyV22CombinedPipeline holds the prior (text -> CLIP image embedding: PriorTransformer, CLIP
text and vision encoders, UnCLIPScheduler) and the decoder (image embedding -> image: an image-
conditioned UNet and the MoVQ VQModel, DDPMScheduler) in one folder whose model_index.json names
the combined class, so AutoPipelineForText2Image.from_pretrained loads it directly (no connected
prior repository to fetch).

The MoVQ has two blocks (scale factor 2): the decoder's latent size is ceil(size / 2**2) * 2, so any
multiple of 4 comes out at the requested size (the real 8x MoVQ needs multiples of 64).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from forgeset.generators.builtin import WEIGHT_SEED, register_builtin
from forgeset.generators.builtin.sd import _ALPHABET as _CLIP_ALPHABET
from forgeset.generators.builtin.sd import char_clip_tokenizer

_EMBED = 32  # the CLIP image-embedding width the prior predicts and the decoder is conditioned on

# Token ids match the character-level CLIP tokenizer (<|startoftext|>=0, <|endoftext|>=1), so the
# projected text embedding the prior reads is taken at the prompt's end-of-text token.
_TEXT: dict[str, Any] = {
    "hidden_size": 32,
    "projection_dim": _EMBED,
    "intermediate_size": 37,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "vocab_size": 1000,
    "max_position_embeddings": 77,
    "bos_token_id": 0,
    "eos_token_id": 1,
    "pad_token_id": 1,
}
# The vision encoder only embeds a zero image (the prior's negative embedding when there is no
# negative prompt), so it is as small as the image processor's 32-px crop allows.
_VISION: dict[str, Any] = {
    "hidden_size": 32,
    "projection_dim": _EMBED,
    "intermediate_size": 37,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_channels": 3,
    "image_size": 32,
    "patch_size": 8,
}
_IMAGE_PROCESSOR: dict[str, Any] = {
    "size": {"shortest_edge": 32},
    "crop_size": {"height": 32, "width": 32},
    "do_resize": True,
    "do_center_crop": True,
    "do_normalize": True,
    "image_mean": [0.48145466, 0.4578275, 0.40821073],
    "image_std": [0.26862954, 0.26130258, 0.27577711],
    "resample": 3,
}
_PRIOR: dict[str, Any] = {"num_attention_heads": 2, "attention_head_dim": 12, "embedding_dim": _EMBED, "num_layers": 1}
_PRIOR_SCHEDULER: dict[str, Any] = {
    "variance_type": "fixed_small_log",
    "prediction_type": "sample",
    "num_train_timesteps": 1000,
    "clip_sample": True,
    "clip_sample_range": 10.0,
}
_UNET: dict[str, Any] = {
    "in_channels": 4,
    "out_channels": 8,  # mean and variance, like Kandinsky's decoder; the pipeline keeps the mean
    "addition_embed_type": "image",
    "encoder_hid_dim": _EMBED,
    "encoder_hid_dim_type": "image_proj",
    "down_block_types": ["ResnetDownsampleBlock2D", "SimpleCrossAttnDownBlock2D"],
    "up_block_types": ["SimpleCrossAttnUpBlock2D", "ResnetUpsampleBlock2D"],
    "mid_block_type": "UNetMidBlock2DSimpleCrossAttn",
    "block_out_channels": [16, 32],
    "layers_per_block": 1,
    "cross_attention_dim": 32,
    "attention_head_dim": 4,
    "resnet_time_scale_shift": "scale_shift",
    "class_embed_type": None,
    "norm_num_groups": 8,
    "sample_size": 32,  # unused by the pipeline (its call defaults to 512 x 512)
}
_MOVQ: dict[str, Any] = {
    "in_channels": 3,
    "out_channels": 3,
    "block_out_channels": [32, 64],  # spatial norm's GroupNorm has 32 groups
    "down_block_types": ["DownEncoderBlock2D", "AttnDownEncoderBlock2D"],
    "up_block_types": ["AttnUpDecoderBlock2D", "UpDecoderBlock2D"],
    "latent_channels": 4,
    "layers_per_block": 1,
    "norm_num_groups": 8,
    "norm_type": "spatial",
    "num_vq_embeddings": 12,
    "vq_embed_dim": 4,
}
_SCHEDULER: dict[str, Any] = {
    "num_train_timesteps": 1000,
    "beta_schedule": "linear",
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "clip_sample": False,
    "steps_offset": 1,
    "prediction_type": "epsilon",
    "variance_type": "fixed_small",
}


def _image_processor() -> Any:
    """The CLIP image processor; the PIL-backed class where transformers has one, so model_index.json
    names the same class whether or not torchvision is installed."""
    import transformers

    processor_cls = getattr(transformers, "CLIPImageProcessorPil", None) or transformers.CLIPImageProcessor
    return processor_cls(**_IMAGE_PROCESSOR)


def _build_tiny_kandinsky22(scratch: Path) -> Any:
    import torch
    from diffusers import (
        DDPMScheduler,
        KandinskyV22CombinedPipeline,
        PriorTransformer,
        UnCLIPScheduler,
        UNet2DConditionModel,
        VQModel,
    )
    from transformers import (
        CLIPTextConfig,
        CLIPTextModelWithProjection,
        CLIPVisionConfig,
        CLIPVisionModelWithProjection,
    )

    torch.manual_seed(WEIGHT_SEED)
    unet = UNet2DConditionModel(**_UNET)
    torch.manual_seed(WEIGHT_SEED + 1)
    movq = VQModel(**_MOVQ)
    torch.manual_seed(WEIGHT_SEED + 2)
    text_encoder = CLIPTextModelWithProjection(CLIPTextConfig(**_TEXT))
    torch.manual_seed(WEIGHT_SEED + 3)
    image_encoder = CLIPVisionModelWithProjection(CLIPVisionConfig(**_VISION))
    torch.manual_seed(WEIGHT_SEED + 4)
    prior: Any = PriorTransformer(**_PRIOR)
    # clip_std starts at zero, which would map every prior output to the same (zero) embedding.
    prior.clip_std = torch.nn.Parameter(torch.ones_like(prior.clip_std))
    return KandinskyV22CombinedPipeline(
        unet=unet,
        scheduler=DDPMScheduler(**_SCHEDULER),
        movq=movq,
        prior_prior=prior,
        prior_image_encoder=image_encoder,
        prior_text_encoder=text_encoder,
        prior_tokenizer=char_clip_tokenizer(scratch / "prior_tokenizer"),
        prior_scheduler=UnCLIPScheduler(**_PRIOR_SCHEDULER),
        prior_image_processor=_image_processor(),
    )


register_builtin(
    "tiny-kandinsky22",
    _build_tiny_kandinsky22,
    {
        "unet": _UNET,
        "movq": _MOVQ,
        "scheduler": _SCHEDULER,
        "prior": _PRIOR,
        "prior_scheduler": _PRIOR_SCHEDULER,
        "text": _TEXT,
        "vision": _VISION,
        "image_processor": _IMAGE_PROCESSOR,
        "tokenizer": {"kind": "char-clip", "alphabet": _CLIP_ALPHABET, "model_max_length": 77},
        "prior_clip_std": 1.0,
    },
)
