"""Builtin tiny random models for the quality metrics (`builtin:tiny-clip`, `builtin:tiny-aesthetic`).

As with the builtin generators (forgeset.generators.builtin), each is built from a config with a
fixed seed, written once as safetensors into the cache (FORGESET_CACHE, else ~/.cache/forgeset)
and then loaded through the same path as a real model. They are kept here, not registered among
the generator builtins, because the generators' builtin list is what `generate` offers.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from forgeset.generators.builtin import BUILTIN_PREFIX, WEIGHT_SEED, is_builtin
from forgeset.generators.builtin.sd import char_clip_tokenizer

HEAD_FILE = "head.safetensors"

TINY_CLIP: dict[str, Any] = {
    "text_config": {
        "hidden_size": 32,
        "intermediate_size": 37,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "vocab_size": 1000,
        "max_position_embeddings": 77,
        # The character tokenizer's <|startoftext|> and <|endoftext|>; CLIP pools the text at eos.
        "bos_token_id": 0,
        "eos_token_id": 1,
        "pad_token_id": 1,
    },
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


RECIPES: dict[str, tuple[Callable[[Path], None], dict[str, Any]]] = {
    "tiny-clip": (_build_tiny_clip, TINY_CLIP),
    "tiny-aesthetic": (_build_tiny_aesthetic, TINY_AESTHETIC),
}


def _revision(name: str) -> str:
    import torch
    import transformers

    versions = {"torch": torch.__version__, "transformers": transformers.__version__}
    recipe = {"name": name, "seed": WEIGHT_SEED, "config": RECIPES[name][1], "versions": versions}
    return "recipe-" + hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:16]


def resolve_model(model: str) -> str:
    """A Hub id or folder unchanged; a `builtin:` name built once into the cache, as its folder."""
    if not is_builtin(model):
        return model
    name = model.removeprefix(BUILTIN_PREFIX)
    if name not in RECIPES:
        raise KeyError(
            f"unknown builtin quality model {model!r}; known: {', '.join(BUILTIN_PREFIX + n for n in RECIPES)}"
        )
    root = Path(os.environ.get("FORGESET_CACHE") or Path.home() / ".cache" / "forgeset") / "builtin"
    target = root / f"{name}-{_revision(name)}"
    if (target / ".complete").exists():
        return str(target)
    root.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=root))
    try:
        RECIPES[name][0](scratch / "model")
        (scratch / "model" / ".complete").write_text(target.name)
        try:
            os.rename(scratch / "model", target)
        except OSError:
            if not (target / ".complete").exists():  # lost a race only if the winner finished
                raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return str(target)
