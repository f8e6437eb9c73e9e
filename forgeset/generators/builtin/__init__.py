"""Builtin tiny random-weight diffusers models for offline runs and tests.

A `builtin:tiny-*` model is built from a config with a fixed seed, saved once to a local cache
as safetensors and then loaded through the same `from_pretrained` path as a real Hub model
(diffusers' own tests do this with `get_dummy_components`). The registry, revision hashing and
cache live in forgeset.core.builtin_models; this package registers the generator family there
(kind "generator", the only builtins `generate` offers).

One file per model family registers its models with `register_builtin`; importing this package
imports every family.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from forgeset.core import builtin_models
from forgeset.core.builtin_models import BUILTIN_PREFIX, WEIGHT_SEED, is_builtin

__all__ = [
    "BUILTIN_PREFIX",
    "WEIGHT_SEED",
    "builtin_names",
    "builtin_revision",
    "is_builtin",
    "materialize_builtin",
    "register_builtin",
]

# The generator weights depend on all three (diffusers models, transformers text encoders).
_LIBRARIES = ("diffusers", "torch", "transformers")


def register_builtin(name: str, build: Callable[[Path], Any], config: dict[str, Any]) -> None:
    """Make generator `builtin:NAME` available (one call per model, in its family's file).

    `build(scratch)` returns a diffusers object with `save_pretrained` (it may write parts such as
    tokenizers under `scratch`); its config is hashed into the revision.
    """

    def write(folder: Path) -> None:
        built = build(folder.parent / "parts")
        built.save_pretrained(folder, safe_serialization=True)

    builtin_models.register_builtin_recipe(name, "generator", write, config, _LIBRARIES)


def builtin_names() -> list[str]:
    """The builtin generator model ids, with their `builtin:` prefix."""
    return builtin_models.builtin_names("generator")


def builtin_revision(model: str) -> str:
    """The recipe hash recorded as the builtin generator's revision (config, seed, library versions)."""
    return builtin_models.builtin_revision(model, "generator")


def materialize_builtin(model: str) -> Path:
    """Build the builtin generator model once into the cache (atomically) and return its folder."""
    return builtin_models.materialize_builtin(model, "generator")


# Every family registers its models when imported (one import line per family file).
from forgeset.generators.builtin import dit, flux, kandinsky, pixart, sd, sd3, sdxl  # noqa: E402, F401
