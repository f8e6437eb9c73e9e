"""The builtin model registry: one family per name, revisions from the recipe, a build-once cache."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

import forgeset.builders.prompts
import forgeset.generators.builtin
import forgeset.quality.builtin_models
from forgeset.core import builtin_models
from forgeset.core.builtin_models import (
    builtin_names,
    builtin_revision,
    cache_root,
    materialize_builtin,
    register_builtin_recipe,
)


@pytest.fixture
def scratch_recipe(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Path]]:
    """`builtin:test-scratch` (kind quality) writing one file; yields the folders it was asked to write."""
    monkeypatch.setenv("FORGESET_CACHE", str(tmp_path / "cache"))
    calls: list[Path] = []

    def write(folder: Path) -> None:
        calls.append(folder)
        folder.mkdir()
        (folder / "weights.safetensors").write_bytes(b"w")

    register_builtin_recipe("test-scratch", "quality", write, {"width": 1}, ("pyarrow",))
    yield calls
    del builtin_models._RECIPES["test-scratch"]


def test_generator_revisions_hash_the_same_recipe_as_before_the_move() -> None:
    """The revision a generator builtin records (and its cache folder name) did not change."""
    import diffusers
    import torch
    import transformers

    from forgeset.generators.builtin.sd import _VAE

    versions = {
        "diffusers": diffusers.__version__,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
    }
    recipe = {"name": "tiny-vae", "seed": 0, "config": {"vae": _VAE}, "versions": versions}
    expected = "recipe-" + hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:16]
    assert builtin_revision("builtin:tiny-vae") == expected
    assert forgeset.generators.builtin.builtin_revision("builtin:tiny-vae") == expected


def test_each_name_belongs_to_one_family_and_generate_lists_only_generators() -> None:
    assert builtin_names("quality") == ["builtin:tiny-clip", "builtin:tiny-aesthetic"]
    assert builtin_names("prompt") == ["builtin:tiny-lm"]
    generators = forgeset.generators.builtin.builtin_names()
    assert generators == builtin_names("generator") and "builtin:tiny-sd" in generators
    assert not {"builtin:tiny-clip", "builtin:tiny-aesthetic", "builtin:tiny-lm"} & set(generators)
    assert set(builtin_names()) == set(generators) | {"builtin:tiny-clip", "builtin:tiny-aesthetic", "builtin:tiny-lm"}
    with pytest.raises(KeyError, match="unknown builtin generator model 'builtin:tiny-clip'; known: builtin:tiny-sd"):
        forgeset.generators.builtin.materialize_builtin("builtin:tiny-clip")
    with pytest.raises(KeyError, match=r"unknown builtin prompt model 'builtin:tiny-sd'; known: builtin:tiny-lm\"$"):
        builtin_revision("builtin:tiny-sd", "prompt")


def test_a_name_cannot_be_registered_twice() -> None:
    with pytest.raises(ValueError, match="builtin model 'tiny-sd' is registered twice"):
        register_builtin_recipe("tiny-sd", "quality", lambda folder: None, {}, ())


def test_revision_covers_config_seed_and_the_recipes_libraries(scratch_recipe: list[Path]) -> None:
    import pyarrow

    described = {
        "name": "test-scratch",
        "seed": 0,
        "config": {"width": 1},
        "versions": {"pyarrow": pyarrow.__version__},
    }
    digest = hashlib.sha256(json.dumps(described, sort_keys=True).encode()).hexdigest()[:16]
    assert builtin_revision("builtin:test-scratch") == f"recipe-{digest}"


def test_materialize_builds_once_with_a_card_and_leaves_no_scratch(scratch_recipe: list[Path]) -> None:
    folder = materialize_builtin("builtin:test-scratch", "quality")
    revision = builtin_revision("builtin:test-scratch")
    assert folder == cache_root() / f"test-scratch-{revision}"
    assert sorted(p.name for p in folder.iterdir()) == [".complete", "README.md", "weights.safetensors"]
    assert (folder / ".complete").read_text() == revision
    assert f"recipe {revision}" in (folder / "README.md").read_text()
    assert materialize_builtin("builtin:test-scratch") == folder
    assert len(scratch_recipe) == 1, "the second call reuses the cache"
    assert [p.name for p in cache_root().iterdir()] == [folder.name], "no scratch folder is left"


def test_a_failed_build_leaves_nothing_and_a_lost_race_keeps_the_winner(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FORGESET_CACHE", str(tmp_path))

    def broken(folder: Path) -> None:
        folder.mkdir()
        raise RuntimeError("out of memory")

    def racing(folder: Path) -> None:
        # Another process finishes the same model while this one writes its copy.
        winner = cache_root() / f"test-race-{builtin_revision('builtin:test-race')}"
        winner.mkdir(parents=True)
        (winner / "weights.safetensors").write_bytes(b"winner")
        (winner / ".complete").write_text("done")
        folder.mkdir()
        (folder / "weights.safetensors").write_bytes(b"loser")

    register_builtin_recipe("test-broken", "quality", broken, {}, ())
    register_builtin_recipe("test-race", "quality", racing, {}, ())
    try:
        with pytest.raises(RuntimeError, match="out of memory"):
            materialize_builtin("builtin:test-broken")
        assert os.listdir(cache_root()) == []
        folder = materialize_builtin("builtin:test-race")
        assert (folder / "weights.safetensors").read_bytes() == b"winner"
        assert [p.name for p in cache_root().iterdir()] == [folder.name]
    finally:
        del builtin_models._RECIPES["test-broken"], builtin_models._RECIPES["test-race"]
