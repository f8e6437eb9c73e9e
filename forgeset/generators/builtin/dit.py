"""DiT-shaped tiny model: tiny-dit, a class-conditional ImageNet-style transformer (DiTPipeline).

It takes class ids, not prompts, and AutoPipelineForText2Image does not map it: load it with
DiTPipeline.from_pretrained (the class2image generator does). Its model_index.json carries an
`id2label` map, as facebook/DiT-XL-2-256's does, so `pipe.labels` / `pipe.get_label_ids(names)`
work; the labels are ten of ImageNet-1k's at their ImageNet ids, so a spec's class names mean the
same classes on the real DiT.

The label embedding has 1000 classes (plus the null class) even though only ten are named: the
pipeline's classifier-free guidance hard-codes class id 1000 as the unconditional class.
The output size is fixed: sample_size 4 latents * VAE factor 8 = 32 px (the call takes no size).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from forgeset.generators.builtin import WEIGHT_SEED, register_builtin
from forgeset.generators.builtin.sd import _VAE, tiny_vae

# ImageNet-1k ids and names (comma-separated synonyms, as in DiT's id2label).
ID2LABEL: dict[int, str] = {
    1: "goldfish, Carassius auratus",
    88: "macaw",
    130: "flamingo",
    207: "golden retriever",
    281: "tabby, tabby cat",
    340: "zebra",
    388: "giant panda, panda, panda bear, coon bear, Ailuropoda melanoleuca",
    483: "castle",
    817: "sports car, sport car",
    980: "volcano",
}
_TRANSFORMER: dict[str, Any] = {
    "sample_size": 4,  # latents; native size 4 * 8 = 32 px
    "patch_size": 2,
    "num_layers": 2,
    "attention_head_dim": 8,
    "num_attention_heads": 2,
    "in_channels": 4,
    "out_channels": 8,  # learned sigma, like DiT; the pipeline keeps the first 4 channels
    "attention_bias": True,
    "activation_fn": "gelu-approximate",
    "num_embeds_ada_norm": 1000,  # ImageNet's classes; id 1000 is the guidance's null class
    "norm_type": "ada_norm_zero",
    "norm_elementwise_affine": False,
}
# DiT's training schedule (linear betas 1e-4..0.02) with DDIM sampling (deterministic: eta = 0).
_SCHEDULER: dict[str, Any] = {
    "num_train_timesteps": 1000,
    "beta_start": 0.0001,
    "beta_end": 0.02,
    "beta_schedule": "linear",
    "clip_sample": False,
    "prediction_type": "epsilon",
}


def _build_tiny_dit(scratch: Path) -> Any:
    import torch
    from diffusers import DDIMScheduler, DiTPipeline, DiTTransformer2DModel

    torch.manual_seed(WEIGHT_SEED)
    transformer = DiTTransformer2DModel(**_TRANSFORMER)
    pipe: Any = DiTPipeline(
        transformer=transformer,
        vae=tiny_vae(),  # seeded with WEIGHT_SEED + 1
        scheduler=DDIMScheduler(**_SCHEDULER),
        id2label=ID2LABEL,
    )
    # id2label is an __init__ argument but not a module: record it so save_pretrained writes it to
    # model_index.json (JSON keys are strings; the pipeline converts them back with int()).
    pipe.register_to_config(id2label={str(key): value for key, value in ID2LABEL.items()})
    return pipe


register_builtin(
    "tiny-dit",
    _build_tiny_dit,
    {
        "transformer": _TRANSFORMER,
        "vae": _VAE,
        "scheduler": _SCHEDULER,
        "id2label": {str(key): value for key, value in ID2LABEL.items()},
    },
)
