"""Builtin tiny models: built once from config, identical bytes, loaded like any real model."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from forgeset.generators.builtin import builtin_names, builtin_revision, materialize_builtin


def _digest(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*.safetensors"))
    }


@pytest.mark.parametrize("model", ["builtin:tiny-sd", "builtin:tiny-vae"])
def test_builtin_weights_are_identical_in_two_fresh_caches(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, model: str
) -> None:
    folders = []
    for name in ("a", "b"):
        monkeypatch.setenv("FORGESET_CACHE", str(tmp_path / name))
        folders.append(materialize_builtin(model))
    first, second = (_digest(folder) for folder in folders)
    assert first and first == second
    assert not list(folders[0].rglob("*.bin")), "weights must be safetensors only"
    assert folders[0].name == f"{model.removeprefix('builtin:')}-{builtin_revision(model)}"


def test_second_materialize_reuses_the_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FORGESET_CACHE", str(tmp_path))
    folder = materialize_builtin("builtin:tiny-vae")
    stamp = (folder / ".complete").stat().st_mtime_ns
    assert materialize_builtin("builtin:tiny-vae") == folder
    assert (folder / ".complete").stat().st_mtime_ns == stamp


def test_builtins_load_through_from_pretrained_with_safetensors() -> None:
    from diffusers import AutoPipelineForInpainting, AutoPipelineForText2Image

    text2image = AutoPipelineForText2Image.from_pretrained(materialize_builtin("builtin:tiny-sd"), use_safetensors=True)
    assert type(text2image).__name__ == "StableDiffusionPipeline"
    inpaint = AutoPipelineForInpainting.from_pretrained(
        materialize_builtin("builtin:tiny-sd-inpaint"), use_safetensors=True
    )
    assert inpaint.unet.config.in_channels == 9
    assert set(builtin_names()) == {
        f"builtin:{name}"
        for name in (
            "tiny-sd",
            "tiny-sd-inpaint",
            "tiny-vae",
            "sd15-random",
            "sdxl-random",
            "tiny-sdxl",
            "tiny-sdxl-turbo",
            "tiny-lcm",
            "tiny-sd3",
            "tiny-flux",
            "tiny-pixart-sigma",
            "tiny-kandinsky22",
            "tiny-dit",
        )
    }


def test_unknown_builtin_lists_the_known_ones() -> None:
    with pytest.raises(KeyError, match="known: builtin:tiny-sd"):
        builtin_revision("builtin:huge")
