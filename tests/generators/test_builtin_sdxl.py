"""Builtin SDXL-family tiny models: tiny-sdxl, tiny-sdxl-turbo and tiny-lcm."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import forgeset.generators.builtin.sdxl  # noqa: F401  (registers the family)
from forgeset.generators.builtin import materialize_builtin

torch = pytest.importorskip("torch")

# model -> (pipeline class loaded by AutoPipelineForText2Image, scheduler class, guidance to call with)
MODELS = {
    "builtin:tiny-sdxl": ("StableDiffusionXLPipeline", "EulerDiscreteScheduler", 5.0),
    "builtin:tiny-sdxl-turbo": ("StableDiffusionXLPipeline", "EulerAncestralDiscreteScheduler", 0.0),
    "builtin:tiny-lcm": ("LatentConsistencyModelPipeline", "LCMScheduler", 8.5),
}
PROMPTS = ["a photo of a cat", "a red car on a street, 4k"]


def _digest(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*.safetensors"))
    }


def _load(folder: Path) -> Any:
    from diffusers import AutoPipelineForText2Image

    pipe = AutoPipelineForText2Image.from_pretrained(str(folder), dtype=torch.float32, use_safetensors=True)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _generate(pipe: Any, seeds: tuple[int, ...] = (1, 2), size: int = 64, **kwargs: Any) -> np.ndarray:
    kwargs.setdefault("num_inference_steps", 2)
    with torch.inference_mode():
        images = pipe(
            prompt=PROMPTS[: len(seeds)],
            height=size,
            width=size,
            generator=[torch.Generator("cpu").manual_seed(s) for s in seeds],
            output_type="np",
            **kwargs,
        ).images
    return np.asarray(images)


@pytest.fixture(scope="module")
def pipes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FORGESET_CACHE", str(tmp_path_factory.mktemp("cache")))
        yield {model: _load(materialize_builtin(model)) for model in MODELS}


@pytest.mark.parametrize("model", list(MODELS))
def test_weights_are_identical_in_two_fresh_caches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, model: str) -> None:
    folders = []
    for name in ("a", "b"):
        monkeypatch.setenv("FORGESET_CACHE", str(tmp_path / name))
        folders.append(materialize_builtin(model))
    first, second = (_digest(folder) for folder in folders)
    assert first and first == second
    assert not list(folders[0].rglob("*.bin")), "weights must be safetensors only"


@pytest.mark.parametrize("model", list(MODELS))
def test_auto_pipeline_loads_and_generates_deterministically(pipes: dict[str, Any], model: str) -> None:
    pipeline_cls, scheduler_cls, guidance = MODELS[model]
    pipe = pipes[model]
    assert type(pipe).__name__ == pipeline_cls
    assert type(pipe.scheduler).__name__ == scheduler_cls
    # The generator passes negative_prompt=None to every pipeline.
    first = _generate(pipe, guidance_scale=guidance, negative_prompt=None)
    again = _generate(pipe, guidance_scale=guidance, negative_prompt=None)
    assert first.shape == (2, 64, 64, 3)
    assert first.min() >= 0.0 and first.max() <= 1.0 and first.std() > 0.01
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first[0], first[1])
    other = _generate(pipe, seeds=(3, 2), size=32, guidance_scale=guidance)
    assert other.shape == (2, 32, 32, 3)


def test_sdxl_has_two_text_encoders_and_text_time_conditioning(pipes: dict[str, Any]) -> None:
    pipe = pipes["builtin:tiny-sdxl"]
    assert type(pipe.text_encoder).__name__ == "CLIPTextModel"
    assert type(pipe.text_encoder_2).__name__ == "CLIPTextModelWithProjection"
    unet = pipe.unet.config
    assert unet.addition_embed_type == "text_time"
    assert unet.cross_attention_dim == pipe.text_encoder.config.hidden_size + pipe.text_encoder_2.config.hidden_size
    assert (
        unet.projection_class_embeddings_input_dim
        == 6 * unet.addition_time_embed_dim + pipe.text_encoder_2.config.projection_dim
    )
    assert pipe.tokenizer.model_max_length == pipe.tokenizer_2.model_max_length == 77
    assert pipe.default_sample_size * pipe.vae_scale_factor == 128
    # Prompts are tokenized character by character and end with <|endoftext|>, where the pooled output is read.
    ids = pipe.tokenizer("a photo of a cat").input_ids
    assert ids[0] == 0 and ids[-1] == pipe.text_encoder_2.config.eos_token_id == 1
    assert len(ids) == 2 + len("aphotoofacat")


def test_sdxl_size_and_crop_conditioning_change_the_image(pipes: dict[str, Any]) -> None:
    pipe = pipes["builtin:tiny-sdxl"]
    base = _generate(pipe, seeds=(1,), guidance_scale=5.0, negative_prompt=["blurry"])
    small = _generate(pipe, seeds=(1,), guidance_scale=5.0, negative_prompt=["blurry"], original_size=(32, 32))
    cropped = _generate(pipe, seeds=(1,), guidance_scale=5.0, negative_prompt=["blurry"], crops_coords_top_left=(8, 8))
    assert not np.array_equal(base, small)
    assert not np.array_equal(base, cropped)


def test_sdxl_turbo_is_few_step_without_guidance(pipes: dict[str, Any]) -> None:
    pipe = pipes["builtin:tiny-sdxl-turbo"]
    assert pipe.scheduler.config.timestep_spacing == "trailing"
    assert pipe.default_sample_size * pipe.vae_scale_factor == 64
    # Turbo's UNet is its own (distilled) model; text encoders and VAE are SDXL's.
    base = pipes["builtin:tiny-sdxl"]
    assert not torch.equal(pipe.unet.conv_in.weight, base.unet.conv_in.weight)
    assert torch.equal(pipe.text_encoder_2.text_projection.weight, base.text_encoder_2.text_projection.weight)
    one_step = _generate(pipe, num_inference_steps=1, guidance_scale=0.0)
    assert one_step.shape == (2, 64, 64, 3)
    pipe.scheduler.set_timesteps(1)
    assert int(pipe.scheduler.timesteps[0]) == 999  # trailing spacing starts from pure noise


def test_lcm_guidance_is_embedded_not_cfg(pipes: dict[str, Any]) -> None:
    pipe = pipes["builtin:tiny-lcm"]
    assert pipe.unet.config.time_cond_proj_dim == 32
    assert pipe.unet.config.cross_attention_dim == pipe.text_encoder.config.hidden_size
    assert pipe.unet.config.sample_size * pipe.vae_scale_factor == 128
    assert pipe.tokenizer.model_max_length == 77
    low = _generate(pipe, seeds=(1,), guidance_scale=1.0)
    high = _generate(pipe, seeds=(1,), guidance_scale=8.5)
    assert not np.array_equal(low, high)  # the guidance scale enters through the UNet's time embedding
    assert pipe.do_classifier_free_guidance is False
