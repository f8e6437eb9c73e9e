"""Text-to-image: each sample's pixels come from its own seed; the recipe is recorded."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from forgeset.generators import GenerationJob
from forgeset.generators.text2image import DiffusersText2Image


@pytest.fixture(scope="module")
def tiny_generator() -> DiffusersText2Image:
    params = DiffusersText2Image.Params(model="builtin:tiny-sd", count=4, steps=3, guidance=4.0, batch_size=4)
    generator = DiffusersText2Image(params, Path("."), image_size=32)
    generator.setup()
    return generator


JOBS = [GenerationJob(f"k-{i}", seed=1000 + i, prompt=p) for i, p in enumerate(["a cat", "a dog", "a car"])]


def test_same_jobs_give_identical_bytes(tiny_generator: DiffusersText2Image) -> None:
    first = tiny_generator.generate(JOBS)
    second = tiny_generator.generate(JOBS)
    assert all(np.array_equal(a, b) for a, b in zip(first, second, strict=True))
    assert first[0].shape == (32, 32, 3) and first[0].dtype == np.uint8
    assert not np.array_equal(first[0], first[1])


def test_a_sample_alone_matches_itself_inside_a_batch(tiny_generator: DiffusersText2Image) -> None:
    """The seed fixes the sample; batching changes float rounding only.

    Bit equality does not hold on CPU (GroupNorm's reduction order depends on the batch size,
    measured: up to 2e-6 in [0, 1] floats), so a few pixels may round to the neighbouring level.
    Byte reproducibility therefore rests on the plan: batch composition is fixed per shard.
    """
    batch = tiny_generator.generate(JOBS)
    for index, job in enumerate(JOBS):
        alone = tiny_generator.generate([job])[0]
        difference = np.abs(alone.astype(int) - batch[index].astype(int))
        assert difference.max() <= 1
        assert (difference > 0).mean() < 0.01
    swapped = tiny_generator.generate([JOBS[0], GenerationJob("other", seed=5, prompt="a house")])
    assert np.abs(swapped[0].astype(int) - batch[0].astype(int)).max() <= 1


def test_initial_noise_depends_on_the_sample_seed_only() -> None:
    import torch
    from diffusers.utils.torch_utils import randn_tensor

    seeds = [11, 12, 13]
    batch = randn_tensor((3, 4, 4, 4), generator=[torch.Generator().manual_seed(s) for s in seeds])
    alone = randn_tensor((1, 4, 4, 4), generator=[torch.Generator().manual_seed(12)])
    assert torch.equal(batch[1:2], alone)


def test_recipe_names_model_revision_scheduler_device_size_and_versions(tiny_generator: DiffusersText2Image) -> None:
    import diffusers
    import torch

    recipe = tiny_generator.recipe()
    assert recipe.model == "builtin:tiny-sd"
    assert recipe.revision is not None and recipe.revision.startswith("recipe-")
    assert recipe.scheduler == "DDIMScheduler"
    assert (recipe.steps, recipe.guidance, recipe.dtype, recipe.device) == (3, 4.0, "float32", "cpu")
    assert recipe.gen_size == tiny_generator.size
    assert recipe.diffusers_version == diffusers.__version__
    assert recipe.torch_version == torch.__version__


def test_scheduler_swap_is_applied_and_recorded() -> None:
    params = DiffusersText2Image.Params(model="builtin:tiny-sd", count=1, steps=2, scheduler="euler-ancestral")
    generator = DiffusersText2Image(params, Path("."), image_size=32)
    generator.setup()
    assert generator.recipe().scheduler == "EulerAncestralDiscreteScheduler"
    job = GenerationJob("k", seed=3, prompt="a cat")
    assert np.array_equal(generator.generate([job])[0], generator.generate([job])[0])


def test_call_arguments_follow_the_pipelines_signature(tiny_generator: DiffusersText2Image) -> None:
    arguments = tiny_generator.call_arguments(JOBS[:1], ["seed"])
    assert arguments == {
        "prompt": ["a cat"],
        "num_inference_steps": 3,
        "guidance_scale": 4.0,
        "height": 32,
        "width": 32,
        "generator": ["seed"],
        "output_type": "np",
    }
    # A setting the loaded pipeline cannot honour is refused, not dropped.
    params = DiffusersText2Image.Params(model="builtin:tiny-sd", count=1, steps=1, max_sequence_length=64)
    refusing = DiffusersText2Image(params, Path("."), image_size=32)
    with pytest.raises(ValueError, match="the StableDiffusionPipeline pipeline takes no max_sequence_length"):
        refusing.setup()


def test_recipe_names_pipeline_scheduler_config_and_the_card_license(tmp_path: Path) -> None:
    import json
    import shutil

    from forgeset.generators.builtin import materialize_builtin

    folder = tmp_path / "model"
    shutil.copytree(materialize_builtin("builtin:tiny-sd"), folder)
    (folder / "README.md").write_text("---\nlicense: creativeml-openrail-m\ntags: [x]\n---\n# a card\n")
    params = DiffusersText2Image.Params(model=str(folder), count=1, steps=2)
    generator = DiffusersText2Image(params, Path("."), image_size=32)
    generator.setup()
    recipe = generator.recipe()
    assert (recipe.pipeline, recipe.scheduler, recipe.license) == (
        "StableDiffusionPipeline",
        "DDIMScheduler",
        "creativeml-openrail-m",
    )
    config = json.loads(recipe.scheduler_config or "{}")
    assert config["beta_schedule"] == "scaled_linear" and config["steps_offset"] == 1


def test_native_size_generates_at_the_models_size() -> None:
    params = DiffusersText2Image.Params(model="builtin:tiny-sd", count=1, steps=1, native_size=True)
    generator = DiffusersText2Image(params, Path("."), image_size=32)
    generator.setup()
    # The tiny UNet's sample_size (16) times the VAE's scale factor (8).
    assert generator.size == 128 and generator.recipe().gen_size == 128
    assert generator.generate(JOBS[:1])[0].shape == (128, 128, 3)


def test_a_prompt_cut_by_the_tokenizer_records_the_text_the_model_saw(tiny_generator: DiffusersText2Image) -> None:
    long = GenerationJob("long", seed=1, prompt=" ".join(["abc"] * 40))  # 120 characters: over 77 tokens
    used = tiny_generator.prompts_used([JOBS[0], long])
    assert used[0] is None
    assert used[1] is not None and long.prompt.startswith(used[1]) and 0 < len(used[1]) < len(long.prompt)


@pytest.mark.parametrize(
    ("setting", "tolerance"), [({"channels_last": True}, 1), ({"dtype": "bfloat16"}, 48), ({"compile": True}, 1)]
)
def test_speed_settings_give_the_plain_paths_images_within_a_tolerance(setting: dict, tolerance: int) -> None:
    """Max |difference| in 0..255: channels_last picks other conv kernels (float rounding, 1 level);
    bfloat16 keeps 8 mantissa bits through 2 denoising steps and the VAE; torch.compile fuses kernels
    (float rounding, 1 level; compiling the tiny UNet takes about a minute on 2 CPU cores)."""
    plain = DiffusersText2Image(DiffusersText2Image.Params(model="builtin:tiny-sd", count=1, steps=2), Path("."), 32)
    fast = DiffusersText2Image(
        DiffusersText2Image.Params(model="builtin:tiny-sd", count=1, steps=2, **setting), Path("."), 32
    )
    plain.setup()
    fast.setup()
    for a, b in zip(plain.generate(JOBS), fast.generate(JOBS), strict=True):
        assert np.abs(a.astype(int) - b.astype(int)).max() <= tolerance


@pytest.mark.parametrize(
    ("model", "settings", "message"),
    [
        (
            "builtin:tiny-lcm",
            {"negative_prompt": "blurry"},
            "LatentConsistencyModelPipeline pipeline takes no negative_prompt",
        ),
        (
            "builtin:tiny-flux",
            {"negative_prompt": "blurry"},
            "guidance is distilled; its negative prompt is used only with",
        ),
        ("builtin:tiny-sd", {"negative_prompt": "blurry", "guidance": 1.0}, "a negative prompt needs guidance > 1"),
        ("builtin:tiny-sdxl", {"true_cfg_scale": 2.0}, "StableDiffusionXLPipeline pipeline takes no true_cfg_scale"),
    ],
)
def test_a_setting_a_pipeline_would_ignore_is_refused(model: str, settings: dict, message: str) -> None:
    generator = DiffusersText2Image(
        DiffusersText2Image.Params(model=model, count=1, steps=1, **settings), Path("."), 32
    )
    with pytest.raises(ValueError, match=message):
        generator.setup()


def test_flux_takes_a_negative_prompt_with_true_cfg() -> None:
    params = DiffusersText2Image.Params(
        model="builtin:tiny-flux", count=1, steps=2, guidance=3.5, negative_prompt="blurry", true_cfg_scale=2.0
    )
    generator = DiffusersText2Image(params, Path("."), 32)
    generator.setup()
    arguments = generator.call_arguments(JOBS[:1], ["seed"])
    assert arguments["true_cfg_scale"] == 2.0 and arguments["negative_prompt"] == ["blurry"]
    assert generator.recipe().pipeline == "FluxPipeline" and generator.recipe().license == "apache-2.0"
    assert generator.generate(JOBS[:2])[0].shape == (32, 32, 3)


def test_the_gpu_path_quantizes_on_the_device_to_the_same_bytes(tiny_generator: DiffusersText2Image) -> None:
    """On CUDA the pipeline returns a tensor that is rounded to uint8 before leaving the GPU."""
    on_host = tiny_generator.generate(JOBS)
    tiny_generator._device = "cuda"  # only the output path changes; the pipeline still runs on the CPU
    try:
        on_device = tiny_generator.generate(JOBS)
    finally:
        tiny_generator._device = "cpu"
    assert all(a.dtype == np.uint8 and np.array_equal(a, b) for a, b in zip(on_device, on_host, strict=True))


def test_batch_size_auto_plans_32_and_halves_on_out_of_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    params = DiffusersText2Image.Params(model="builtin:tiny-sd", count=5, steps=1, batch_size="auto")
    assert params.planned_batch_size == 32
    generator = DiffusersText2Image(params, Path("."), 32)
    generator.pipe = object()  # no model needed: the batch itself is faked below
    generator._device = "cuda"
    calls: list[int] = []

    def fake_batch(jobs: list[GenerationJob]) -> list[np.ndarray]:
        calls.append(len(jobs))
        if len(jobs) > 2:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory")
        return [np.full((32, 32, 3), int(job.key.split("-")[1]), np.uint8) for job in jobs]

    monkeypatch.setattr(generator, "_generate_batch", fake_batch)
    jobs = [GenerationJob(f"k-{i}", seed=i, prompt="a cat") for i in range(5)]
    images = generator.generate(jobs)
    assert [int(image[0, 0, 0]) for image in images] == [0, 1, 2, 3, 4]  # every job once, in order
    assert calls == [5, 2, 2, 1] and generator._fits == 2
    for bad in (0, "big"):
        with pytest.raises(ValueError):
            DiffusersText2Image.Params(model="builtin:tiny-sd", count=1, batch_size=bad)


@pytest.mark.parametrize("model", ["builtin:tiny-kandinsky22", "builtin:tiny-pixart-sigma", "builtin:tiny-sdxl"])
def test_the_gpu_output_path_keeps_every_familys_bytes(model: str) -> None:
    generator = DiffusersText2Image(DiffusersText2Image.Params(model=model, count=1, steps=2), Path("."), 32)
    generator.setup()
    on_host = generator.generate(JOBS[:2])
    generator._device = "cuda"  # the pipeline still runs on the CPU; only the output path changes
    on_device = generator.generate(JOBS[:2])
    assert all(np.array_equal(a, b) for a, b in zip(on_device, on_host, strict=True))


def test_settings_that_would_do_nothing_are_refused() -> None:
    kandinsky = DiffusersText2Image.Params(model="builtin:tiny-kandinsky22", count=1, steps=1, native_size=True)
    with pytest.raises(ValueError, match="pipeline states no native size; set size"):
        DiffusersText2Image(kandinsky, Path("."), 32).setup()
    flux = DiffusersText2Image.Params(model="builtin:tiny-flux", count=1, steps=1, true_cfg_scale=2.0)
    with pytest.raises(ValueError, match="true_cfg_scale does nothing without a negative_prompt"):
        DiffusersText2Image(flux, Path("."), 32).setup()
