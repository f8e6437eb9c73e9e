"""Builtin tiny random-weight models: a registry of recipes and a build-once cache.

A `builtin:NAME` model is built from a config with a fixed seed, saved once to a local cache
(FORGESET_CACHE, else ~/.cache/forgeset) as safetensors and then loaded through the same
`from_pretrained` path as a real Hub model. The same library versions give the same weights on
every machine; the recipe hash (config, seed, versions) is recorded as the model's revision.

Each model family registers its recipes under one kind ("generator", "quality", "prompt"): a
name belongs to one family, and each consumer lists and resolves only its own kind (`generate`
offers the generator builtins, not the tiny CLIP). Heavy libraries are imported only when a
revision is computed or a model is built.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

BUILTIN_PREFIX = "builtin:"
WEIGHT_SEED = 0

BuiltinKind = Literal["generator", "quality", "prompt"]
COMPLETE_MARKER = ".complete"


@dataclass(frozen=True)
class BuiltinRecipe:
    """How to build one tiny model and what its revision hashes.

    `write(folder)` writes the model's files into `folder` (which it creates); the folder's parent
    is a private scratch directory, removed afterwards, that `write` may use for intermediate parts.
    `libraries` are the packages whose versions enter the revision (their weights depend on them).
    """

    kind: BuiltinKind
    write: Callable[[Path], None]
    config: dict[str, Any]
    libraries: tuple[str, ...]


_RECIPES: dict[str, BuiltinRecipe] = {}


def register_builtin_recipe(
    name: str,
    kind: BuiltinKind,
    write: Callable[[Path], None],
    config: dict[str, Any],
    libraries: tuple[str, ...],
) -> None:
    """Make `builtin:NAME` available to consumers of `kind` (one call per model, in its family's file)."""
    if name in _RECIPES:
        raise ValueError(f"builtin model {name!r} is registered twice")
    _RECIPES[name] = BuiltinRecipe(kind, write, config, libraries)


def cache_root() -> Path:
    """Where builtin models are written: FORGESET_CACHE, else ~/.cache/forgeset."""
    root = os.environ.get("FORGESET_CACHE") or Path.home() / ".cache" / "forgeset"
    return Path(root) / "builtin"


def is_builtin(model: str) -> bool:
    """Whether a spec's model string names a builtin tiny model."""
    return model.startswith(BUILTIN_PREFIX)


def builtin_names(kind: BuiltinKind | None = None) -> list[str]:
    """The registered builtin model ids of `kind` (every kind when None), with their prefix."""
    return [BUILTIN_PREFIX + name for name, recipe in _RECIPES.items() if kind is None or recipe.kind == kind]


def _recipe(model: str, kind: BuiltinKind | None) -> tuple[str, BuiltinRecipe]:
    name = model.removeprefix(BUILTIN_PREFIX)
    recipe = _RECIPES.get(name)
    if recipe is None or (kind is not None and recipe.kind != kind):
        family = f"{kind} " if kind else ""
        raise KeyError(f"unknown builtin {family}model {model!r}; known: {', '.join(builtin_names(kind))}")
    return name, recipe


def builtin_revision(model: str, kind: BuiltinKind | None = None) -> str:
    """The recipe hash recorded as the builtin model's revision (config, seed, library versions).

    KeyError (listing the known names of `kind`) when `model` is not a builtin of that kind.
    """
    name, recipe = _recipe(model, kind)
    versions = {library: importlib.import_module(library).__version__ for library in recipe.libraries}
    described = {"name": name, "seed": WEIGHT_SEED, "config": recipe.config, "versions": versions}
    digest = hashlib.sha256(json.dumps(described, sort_keys=True).encode()).hexdigest()
    return f"recipe-{digest[:16]}"


def materialize_builtin(model: str, kind: BuiltinKind | None = None) -> Path:
    """Build the builtin model once into the cache (atomically) and return its folder.

    Concurrent builders each write a private scratch folder and rename it into place; the loser
    of the race discards its copy, so readers only ever see complete folders.
    """
    name, recipe = _recipe(model, kind)
    revision = builtin_revision(model, kind)
    target = cache_root() / f"{name}-{revision}"
    if (target / COMPLETE_MARKER).exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=target.parent))
    try:
        folder = scratch / "model"
        recipe.write(folder)
        # A model card, as a Hub model has: random weights from forgeset's own recipe.
        (folder / "README.md").write_text(
            f"---\nlicense: apache-2.0\n---\n# {model}\nRandom weights built by forgeset from recipe {revision}.\n"
        )
        (folder / COMPLETE_MARKER).write_text(revision)
        try:
            os.rename(folder, target)
        except OSError:
            if not (target / COMPLETE_MARKER).exists():  # lost a race only if the winner finished
                raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return target
