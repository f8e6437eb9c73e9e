"""PixArt-Sigma-shaped tiny model: tiny-pixart-sigma (DiT transformer with cross-attention, one T5 encoder).

The transformer's sample_size is 32 because PixArtSigmaPipeline's default resolution binning only
knows sample sizes 32/64/128/256: a call without `use_resolution_binning=False` generates at the
closest 256-px aspect-ratio bin (32 latents * VAE factor 8) and resizes the result back to the
requested size, as the real 1024-px model does with its 1024 bins.
"""

from __future__ import annotations

import string
from pathlib import Path
from typing import Any

from forgeset.generators.builtin import WEIGHT_SEED, register_builtin
from forgeset.generators.builtin.sd import _VAE, tiny_vae

# Characters the tiny T5 tokenizer knows (case-sensitive, like T5); anything else is <unk>.
_ALPHABET = string.ascii_letters + string.digits + ",.-'!?:;&()/\""
# T5 ids: <pad>=0, </s>=1, <unk>=2, "▁"=3, then each character with and without the word-start
# marker ("a cat" -> "▁a ▁c a t </s>", like sentencepiece's character fallback). model_max_length is
# the pipeline's default max_sequence_length (300), so the tokenizer's limit is the cut the model sees.
_TOKENIZER: dict[str, Any] = {"alphabet": _ALPHABET, "model_max_length": 300, "extra_ids": 0}
_TEXT: dict[str, Any] = {
    "vocab_size": 4 + 2 * len(_ALPHABET),
    "d_model": 32,
    "d_kv": 8,
    "d_ff": 37,
    "num_layers": 2,
    "num_heads": 4,
    "relative_attention_num_buckets": 8,
    "relative_attention_max_distance": 32,
    "feed_forward_proj": "gated-gelu",  # T5 v1.1, PixArt's encoder
    "pad_token_id": 0,
    "eos_token_id": 1,
    "decoder_start_token_id": 0,
}
_TRANSFORMER: dict[str, Any] = {
    "sample_size": 32,  # the smallest size resolution binning accepts (256-px bins)
    "num_layers": 2,
    "patch_size": 2,
    "attention_head_dim": 8,
    "num_attention_heads": 3,
    "caption_channels": _TEXT["d_model"],
    "in_channels": 4,
    "out_channels": 8,  # learned sigma, like PixArt; the pipeline keeps the first 4 channels
    "cross_attention_dim": 24,  # = num_attention_heads * attention_head_dim
    "attention_bias": True,
    "activation_fn": "gelu-approximate",
    "num_embeds_ada_norm": 1000,
    "norm_type": "ada_norm_single",
    "norm_elementwise_affine": False,
    "norm_eps": 1e-6,
}
# PixArt-Sigma's own scheduler: DPM-Solver++ (2nd order) over a linear beta schedule.
_SCHEDULER: dict[str, Any] = {
    "beta_start": 0.0001,
    "beta_end": 0.02,
    "beta_schedule": "linear",
    "num_train_timesteps": 1000,
    "prediction_type": "epsilon",
    "algorithm_type": "dpmsolver++",
    "solver_order": 2,
    "lower_order_final": True,
}


def char_t5_tokenizer(alphabet: str, model_max_length: int, extra_ids: int = 0) -> Any:
    """A character-level T5 (Unigram) tokenizer built offline; saved as tokenizer.json."""
    from transformers import T5Tokenizer

    vocab: list[tuple[str, float]] = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("▁", -2.0)]
    vocab += [("▁" + char, -3.0) for char in alphabet] + [(char, -3.0) for char in alphabet]
    return T5Tokenizer(vocab=vocab, extra_ids=extra_ids, model_max_length=model_max_length)


def _build_tiny_pixart_sigma(scratch: Path) -> Any:
    import torch
    from diffusers import DPMSolverMultistepScheduler, PixArtSigmaPipeline, PixArtTransformer2DModel
    from transformers import T5Config, T5EncoderModel

    torch.manual_seed(WEIGHT_SEED)
    transformer = PixArtTransformer2DModel(**_TRANSFORMER)
    torch.manual_seed(WEIGHT_SEED + 2)
    text_encoder = T5EncoderModel(T5Config(**_TEXT))
    return PixArtSigmaPipeline(
        tokenizer=char_t5_tokenizer(**_TOKENIZER),
        text_encoder=text_encoder,
        vae=tiny_vae(),  # seeded with WEIGHT_SEED + 1
        transformer=transformer,
        scheduler=DPMSolverMultistepScheduler(**_SCHEDULER),
    )


register_builtin(
    "tiny-pixart-sigma",
    _build_tiny_pixart_sigma,
    {"transformer": _TRANSFORMER, "vae": _VAE, "text": _TEXT, "tokenizer": _TOKENIZER, "scheduler": _SCHEDULER},
)
