"""Builtin tiny random-weight diffusers models for offline runs and tests.

A `builtin:tiny-*` model is built from a config with a fixed seed, saved once to a local cache
as safetensors and then loaded through the same `from_pretrained` path as a real Hub model
(diffusers' own tests do this with `get_dummy_components`). The same library versions give the
same weights on every machine; the recipe hash is recorded as the model's revision.

One file per model family registers its models with `register_builtin`; importing this package
imports every family.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BUILTIN_PREFIX = "builtin:"
WEIGHT_SEED = 0


@dataclass(frozen=True)
class BuiltinRecipe:
    """How to build one tiny model (`build(scratch)` returns a diffusers object with save_pretrained)
    and the config it is built from (hashed into the revision)."""

    build: Callable[[Path], Any]
    config: dict[str, Any]


_RECIPES: dict[str, BuiltinRecipe] = {}


def register_builtin(name: str, build: Callable[[Path], Any], config: dict[str, Any]) -> None:
    """Make `builtin:NAME` available (one call per model, in its family's file)."""
    if name in _RECIPES:
        raise ValueError(f"builtin model {name!r} is registered twice")
    _RECIPES[name] = BuiltinRecipe(build, config)


def _cache_root() -> Path:
    """Where builtin models are written: FORGESET_CACHE, else ~/.cache/forgeset."""
    root = os.environ.get("FORGESET_CACHE") or Path.home() / ".cache" / "forgeset"
    return Path(root) / "builtin"


def _versions() -> dict[str, str]:
    import diffusers
    import torch
    import transformers

    return {"diffusers": diffusers.__version__, "torch": torch.__version__, "transformers": transformers.__version__}


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
    recipe = {"name": name, "seed": WEIGHT_SEED, "config": _RECIPES[name].config, "versions": _versions()}
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
        built = _RECIPES[name].build(scratch / "parts")
        built.save_pretrained(scratch / "model", safe_serialization=True)
        # A model card, as a Hub model has: random weights from forgeset's own recipe.
        (scratch / "model" / "README.md").write_text(
            f"---\nlicense: apache-2.0\n---\n# {model}\nRandom weights built by forgeset from recipe {revision}.\n"
        )
        (scratch / "model" / ".complete").write_text(revision)
        try:
            os.rename(scratch / "model", target)
        except OSError:
            if not (target / ".complete").exists():  # lost a race only if the winner finished
                raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return target


# Every family registers its models when imported (one import line per family file).
from forgeset.generators.builtin import dit, flux, kandinsky, pixart, sd, sd3, sdxl  # noqa: E402, F401
