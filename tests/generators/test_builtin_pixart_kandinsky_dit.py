"""Builtin tiny PixArt-Sigma, Kandinsky 2.2 (combined) and DiT models, and the class2image generator."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import forgeset.generators.builtin.dit
import forgeset.generators.builtin.kandinsky
import forgeset.generators.builtin.pixart  # noqa: F401  (registers the tiny models)
from forgeset.generators import GenerationJob
from forgeset.generators.builtin import materialize_builtin
from forgeset.generators.class2image import DiffusersClass2Image

MODELS = ["builtin:tiny-pixart-sigma", "builtin:tiny-kandinsky22", "builtin:tiny-dit"]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Path]]:
    """Every model built once into a fresh cache, which stays FORGESET_CACHE for this module."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("FORGESET_CACHE", str(tmp_path_factory.mktemp("cache-a")))
        yield {model: materialize_builtin(model) for model in MODELS}


def _digest(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*.safetensors"))
    }


@pytest.mark.parametrize("model", MODELS)
def test_weights_are_identical_in_two_fresh_caches(
    built: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, model: str
) -> None:
    monkeypatch.setenv("FORGESET_CACHE", str(tmp_path))
    again = materialize_builtin(model)
    assert again != built[model]
    first = _digest(built[model])
    assert first and first == _digest(again)
    assert not list(again.rglob("*.bin")), "weights must be safetensors only"


def _load_auto(folder: Path) -> Any:
    import torch
    from diffusers import AutoPipelineForText2Image

    pipe = AutoPipelineForText2Image.from_pretrained(str(folder), dtype=torch.float32, use_safetensors=True)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _seeds(*seeds: int) -> list[Any]:
    import torch

    return [torch.Generator("cpu").manual_seed(seed) for seed in seeds]


def _check_images(images: np.ndarray, size: int) -> None:
    assert images.shape == (2, size, size, 3)
    assert images.min() >= 0.0 and images.max() <= 1.0
    assert not np.array_equal(images[0], images[1])


PROMPTS = ["a photo of a cat", "a red car on a street"]


def test_pixart_sigma_loads_through_auto_and_generates_deterministically(built: dict[str, Path]) -> None:
    pipe = _load_auto(built["builtin:tiny-pixart-sigma"])
    assert type(pipe).__name__ == "PixArtSigmaPipeline"
    assert type(pipe.tokenizer).__name__ == "T5Tokenizer" and pipe.tokenizer.model_max_length == 300
    tokens = pipe.tokenizer.convert_ids_to_tokens(pipe.tokenizer("a photo of a cat").input_ids)
    assert tokens[:4] == ["▁a", "▁p", "h", "o"] and tokens[-1] == "</s>" and "<unk>" not in tokens
    # Default call (resolution binning on): generated in the 256-px bin, resized back to 32.
    runs = [
        pipe(
            prompt=PROMPTS,
            num_inference_steps=2,
            guidance_scale=4.5,
            height=32,
            width=32,
            generator=_seeds(1, 2),
            output_type="np",
        ).images
        for _ in range(2)
    ]
    _check_images(runs[0], 32)
    assert np.array_equal(runs[0], runs[1])
    # Without binning it generates at the requested size directly; max_sequence_length and a
    # negative prompt list are accepted with per-sample generators.
    native = pipe(
        prompt=PROMPTS,
        negative_prompt=["blurry", "blurry"],
        num_inference_steps=2,
        guidance_scale=4.5,
        height=64,
        width=64,
        max_sequence_length=32,
        use_resolution_binning=False,
        generator=_seeds(1, 2),
        output_type="np",
    ).images
    _check_images(native, 64)


def test_kandinsky22_combined_loads_through_auto_and_generates_deterministically(built: dict[str, Path]) -> None:
    pipe = _load_auto(built["builtin:tiny-kandinsky22"])
    assert type(pipe).__name__ == "KandinskyV22CombinedPipeline"
    assert type(pipe.prior_pipe).__name__ == "KandinskyV22PriorPipeline"
    assert pipe.prior_tokenizer.model_max_length == 77
    runs = [
        pipe(
            prompt=PROMPTS,
            num_inference_steps=2,
            prior_num_inference_steps=2,
            guidance_scale=4.0,
            height=32,
            width=32,
            generator=_seeds(1, 2),
            output_type="np",
        ).images
        for _ in range(2)
    ]
    _check_images(runs[0], 32)
    assert np.array_equal(runs[0], runs[1])
    # The prompt reaches the image: the same seeds with other prompts give other pixels.
    other = pipe(
        prompt=["a house", "a tree"],
        num_inference_steps=2,
        prior_num_inference_steps=2,
        height=32,
        width=32,
        generator=_seeds(1, 2),
        output_type="np",
    ).images
    assert not np.array_equal(other, runs[0])


def test_dit_loads_with_its_own_class_and_knows_imagenet_labels(built: dict[str, Path]) -> None:
    import torch
    from diffusers import AutoPipelineForText2Image, DiTPipeline

    folder = built["builtin:tiny-dit"]
    with pytest.raises(ValueError, match="DiTPipeline"):
        AutoPipelineForText2Image.from_pretrained(str(folder), use_safetensors=True)
    pipe = DiTPipeline.from_pretrained(str(folder), dtype=torch.float32, use_safetensors=True)
    pipe.set_progress_bar_config(disable=True)
    assert pipe.get_label_ids(["tabby", "tabby cat", "golden retriever", "volcano"]) == [281, 281, 207, 980]
    runs = [
        pipe(
            class_labels=pipe.get_label_ids(["tabby", "castle"]),
            num_inference_steps=2,
            guidance_scale=4.0,
            generator=_seeds(1, 2),
            output_type="np",
        ).images
        for _ in range(2)
    ]
    _check_images(runs[0], 32)
    assert np.array_equal(runs[0], runs[1])


def test_class2image_generator_maps_job_prompts_to_classes(built: dict[str, Path]) -> None:
    params = DiffusersClass2Image.Params(
        model="builtin:tiny-dit", count=2, steps=2, guidance=4.0, classes=["tabby", "Golden Retriever", 980]
    )
    assert DiffusersClass2Image.own_prompts(params) == ["tabby", "Golden Retriever", "980"]
    generator = DiffusersClass2Image(params, Path("."), image_size=32)
    generator.setup()
    assert generator.size == 32
    names: list[str | int] = ["tabby", "Golden Retriever", "980", 5]
    assert [generator.class_id(name) for name in names] == [281, 207, 980, 5]
    jobs = [GenerationJob("k-0", seed=11, prompt="tabby"), GenerationJob("k-1", seed=12, prompt="980")]
    first, second = generator.generate(jobs), generator.generate(jobs)
    assert all(np.array_equal(a, b) for a, b in zip(first, second, strict=True))
    assert first[0].shape == (32, 32, 3) and first[0].dtype == np.uint8
    assert not np.array_equal(first[0], first[1])
    recipe = generator.recipe()
    assert recipe.model == "builtin:tiny-dit" and recipe.pipeline == "DiTPipeline"
    assert recipe.revision is not None and recipe.revision.startswith("recipe-")
    assert (recipe.scheduler, recipe.steps, recipe.guidance, recipe.gen_size) == ("DDIMScheduler", 2, 4.0, 32)
    with pytest.raises(ValueError, match="unknown class 'unicorn'"):
        generator.class_id("unicorn")
    with pytest.raises(ValueError, match="outside"):
        generator.class_id(1000)


def test_class2image_refuses_a_size_the_model_cannot_make(built: dict[str, Path]) -> None:
    params = DiffusersClass2Image.Params(model="builtin:tiny-dit", count=1, size=64, classes=["zebra"])
    with pytest.raises(ValueError, match="its own size only"):
        DiffusersClass2Image(params, Path("."), image_size=32).setup()
    swapped = DiffusersClass2Image.Params(model="builtin:tiny-dit", count=1, classes=[340], scheduler="dpm-multistep")
    generator = DiffusersClass2Image(swapped, Path("."), image_size=256)
    generator.setup()
    assert generator.size == 32 and generator.recipe().scheduler == "DPMSolverMultistepScheduler"
    with pytest.raises(ValueError):
        DiffusersClass2Image.Params(model="builtin:tiny-dit", count=1, classes=[1], scheduler="ddpm")
