"""Builtin tiny SD3 and FLUX models: built offline from config, identical bytes, loaded and run
through AutoPipelineForText2Image like real Hub models."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import forgeset.generators.builtin.flux
import forgeset.generators.builtin.sd3  # noqa: F401  (registers tiny-sd3; flux above registers tiny-flux)
from forgeset.generators.builtin import builtin_revision, materialize_builtin

# model -> (pipeline class, guidance keyword arguments of a call)
MODELS = {
    "builtin:tiny-sd3": ("StableDiffusion3Pipeline", {"guidance_scale": 5.0}),
    "builtin:tiny-flux": ("FluxPipeline", {"guidance_scale": 3.5}),
}
PROMPTS = ["a photo of a cat", "a red car parked on a street"]


def _digest(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*.safetensors"))
    }


@pytest.fixture(scope="module")
def pipes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Each model built once into a fresh cache and loaded back with use_safetensors=True."""
    import torch
    from diffusers import AutoPipelineForText2Image

    loaded = {}
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("FORGESET_CACHE", str(tmp_path_factory.mktemp("cache")))
        for model in MODELS:
            folder = materialize_builtin(model)
            pipe = AutoPipelineForText2Image.from_pretrained(str(folder), dtype=torch.float32, use_safetensors=True)
            pipe.set_progress_bar_config(disable=True)
            loaded[model] = pipe
    return loaded


def _generate(pipe: Any, model: str, size: int, seeds: tuple[int, int], **overrides: Any) -> np.ndarray:
    import torch

    kwargs: dict[str, Any] = {
        "prompt": PROMPTS,
        "num_inference_steps": 2,
        "height": size,
        "width": size,
        "generator": [torch.Generator("cpu").manual_seed(s) for s in seeds],
        "output_type": "np",
        **MODELS[model][1],
        **overrides,
    }
    with torch.inference_mode():
        return np.asarray(pipe(**kwargs).images)


@pytest.mark.parametrize("model", list(MODELS))
def test_weights_are_identical_in_two_fresh_caches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, model: str) -> None:
    folders = []
    for name in ("a", "b"):
        monkeypatch.setenv("FORGESET_CACHE", str(tmp_path / name))
        folders.append(materialize_builtin(model))
    first, second = (_digest(folder) for folder in folders)
    assert first and first == second
    assert not list(folders[0].rglob("*.bin")), "weights must be safetensors only"
    assert folders[0].name == f"{model.removeprefix('builtin:')}-{builtin_revision(model)}"


@pytest.mark.parametrize("model", list(MODELS))
def test_loads_as_its_pipeline_and_generates_deterministically(pipes: dict[str, Any], model: str) -> None:
    pipe = pipes[model]
    assert type(pipe).__name__ == MODELS[model][0]
    for size in (32, 64):
        images = _generate(pipe, model, size, (3, 4))
        assert images.shape == (2, size, size, 3)
        assert np.isfinite(images).all() and images.min() >= 0.0 and images.max() <= 1.0
        np.testing.assert_array_equal(images, _generate(pipe, model, size, (3, 4)))
    # Another seed or another prompt changes only its own image (prompts get distinct embeddings).
    reference = _generate(pipe, model, 32, (3, 3))
    other_seed = _generate(pipe, model, 32, (5, 3))
    assert not np.array_equal(reference[0], other_seed[0])
    np.testing.assert_array_equal(reference[1], other_seed[1])
    other_prompt = _generate(pipe, model, 32, (3, 3), prompt=["a photo of a dog", PROMPTS[1]])
    assert not np.array_equal(reference[0], other_prompt[0])
    np.testing.assert_array_equal(reference[1], other_prompt[1])


def test_text_parts_are_built_offline_and_sensible(pipes: dict[str, Any]) -> None:
    sd3, flux = pipes["builtin:tiny-sd3"], pipes["builtin:tiny-flux"]
    assert [type(t).__name__ for t in (sd3.tokenizer, sd3.tokenizer_2, sd3.tokenizer_3)] == [
        "CLIPTokenizer",
        "CLIPTokenizer",
        "T5Tokenizer",
    ]
    assert (sd3.tokenizer.model_max_length, sd3.tokenizer_3.model_max_length) == (77, 32)
    assert (flux.tokenizer.model_max_length, flux.tokenizer_2.model_max_length) == (77, 32)
    t5 = sd3.tokenizer_3
    ids = t5("a photo of a cat").input_ids
    assert ids[-1] == t5.eos_token_id and t5.unk_token_id not in ids
    assert t5.decode(ids, skip_special_tokens=True) == "a photo of a cat"
    clip_ids = sd3.tokenizer("a photo of a cat").input_ids
    assert clip_ids[-1] == sd3.text_encoder.config.eos_token_id  # pooled output taken at end-of-text
    assert flux.transformer.config.guidance_embeds  # FLUX.1-dev: distilled guidance
    assert (sd3.default_sample_size * sd3.vae_scale_factor, flux.default_sample_size * flux.vae_scale_factor) == (
        128,
        1024,
    )


def test_flux_guidance_is_distilled_and_negative_prompt_needs_true_cfg(pipes: dict[str, Any]) -> None:
    model = "builtin:tiny-flux"
    pipe = pipes[model]
    plain = _generate(pipe, model, 32, (1, 2))
    assert not np.array_equal(plain, _generate(pipe, model, 32, (1, 2), guidance_scale=1.0))
    # negative_prompt is accepted but ignored unless true_cfg_scale > 1.
    negative = ["blurry", "blurry"]
    np.testing.assert_array_equal(plain, _generate(pipe, model, 32, (1, 2), negative_prompt=negative))
    true_cfg = _generate(pipe, model, 32, (1, 2), negative_prompt=negative, true_cfg_scale=2.0)
    assert not np.array_equal(plain, true_cfg)


@pytest.mark.parametrize("model", list(MODELS))
def test_max_sequence_length_is_capped_at_512(pipes: dict[str, Any], model: str) -> None:
    assert _generate(pipes[model], model, 32, (1, 2), max_sequence_length=32).shape == (2, 32, 32, 3)
    with pytest.raises(ValueError, match="cannot be greater than 512"):
        _generate(pipes[model], model, 32, (1, 2), max_sequence_length=513)
