"""Inpainting and laundering of real parents: what changes, what is recorded."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from forgeset.core.rejection import SampleRejected
from forgeset.generators import ManipulationJob, StageOutput
from forgeset.generators.base import ParentImage
from forgeset.generators.inpaint import InpaintStage
from forgeset.generators.launder import LaunderStage, fidelity

PARENTS = [ParentImage(np.random.default_rng(i).integers(0, 256, (32, 32, 3), dtype=np.uint8)) for i in range(3)]
JOBS = [ManipulationJob(f"k{i}", seed=100 + i, prompt="a cat", parent_key=f"p{i}") for i in range(3)]


def inpaint(**params: object) -> list[StageOutput | SampleRejected]:
    stage = InpaintStage(InpaintStage.Params(count=3, **params), Path("."), 32)
    stage.setup()
    return stage.manipulate(JOBS, PARENTS)


@pytest.mark.parametrize("model", ["opencv:telea", "opencv:ns"])
def test_opencv_inpainting_edits_only_inside_the_mask(model: str) -> None:
    outputs = inpaint(model=model, mask={"type": "boxes", "area": (0.1, 0.3)})
    for output, parent in zip(outputs, PARENTS, strict=True):
        assert isinstance(output, StageOutput)
        inside = output.mask > 0
        assert 0.1 <= inside.mean() <= 0.3 and output.strength == 1.0
        assert np.array_equal(output.pixels[~inside], parent.pixels[~inside])
        assert not np.array_equal(output.pixels[inside], parent.pixels[inside])
        assert output.ops[0]["params"]["paste_back"] is True
    assert outputs[0].ops[0]["params"]["mask"]["type"] == "boxes"


def test_opencv_stage_resolves_to_the_cpu() -> None:
    params = InpaintStage.Params(model="opencv:telea", count=1)
    assert (params.device, params.dtype) == ("cpu", "float32")


def test_diffusion_inpainting_paste_back_controls_pixels_outside_the_mask() -> None:
    common = {"model": "builtin:tiny-sd-inpaint", "steps": 2, "mask": {"type": "boxes", "area": (0.2, 0.4)}}
    pasted = inpaint(**common, paste_back=True)
    free = inpaint(**common, paste_back=False)
    for with_paste, without, parent in zip(pasted, free, PARENTS, strict=True):
        outside = with_paste.mask == 0
        assert np.array_equal(with_paste.pixels[outside], parent.pixels[outside])
        assert not np.array_equal(without.pixels[outside], parent.pixels[outside])
        assert np.array_equal(with_paste.mask, without.mask)  # the mask depends on the seed only
        assert np.array_equal(with_paste.pixels[~outside], without.pixels[~outside])


def test_an_annotation_mask_without_annotations_rejects_the_sample() -> None:
    outputs = inpaint(model="opencv:telea", mask={"type": "annotation", "area": (0.1, 0.3)})
    assert all(isinstance(o, SampleRejected) and o.reason == "no usable mask" for o in outputs)


def test_vae_round_trip_records_fidelity() -> None:
    stage = LaunderStage(LaunderStage.Params(model="builtin:tiny-vae", count=3), Path("."), 32)
    outputs = stage.manipulate(JOBS, PARENTS)
    for output, parent in zip(outputs, PARENTS, strict=True):
        assert output.pixels.shape == (32, 32, 3)
        assert output.strength is None
        assert {"psnr": output.psnr, "ssim": output.ssim} == fidelity(parent.pixels, output.pixels)
        assert output.psnr is not None and output.psnr < 100
    recipe = stage.recipe()
    assert recipe.revision is not None and recipe.revision.startswith("recipe-")
    assert (recipe.device, recipe.gen_size, recipe.steps) == ("cpu", 32, None)
    again = stage.manipulate(JOBS, PARENTS)
    assert all(np.array_equal(a.pixels, b.pixels) for a, b in zip(outputs, again, strict=True))


def test_img2img_sweep_uses_each_jobs_strength() -> None:
    params = LaunderStage.Params(model="builtin:tiny-sd", mode="img2img", count=1, strengths=[0.3, 0.9], steps=4)
    stage = LaunderStage(params, Path("."), 32)
    jobs = [ManipulationJob(f"s{s}", seed=5, prompt="a cat", parent_key="p", strength=s) for s in (0.3, 0.9)]
    low, high = stage.manipulate(jobs, [PARENTS[0], PARENTS[0]])
    assert (low.strength, high.strength) == (0.3, 0.9)
    assert [o.ops[0]["params"]["strength"] for o in (low, high)] == [0.3, 0.9]
    assert not np.array_equal(low.pixels, high.pixels)  # same seed and parent: only strength differs
    again = stage.manipulate(jobs, [PARENTS[0], PARENTS[0]])
    assert np.array_equal(again[0].pixels, low.pixels) and np.array_equal(again[1].pixels, high.pixels)


def test_fidelity_of_identical_images() -> None:
    assert fidelity(PARENTS[0].pixels, PARENTS[0].pixels) == {"psnr": 100.0, "ssim": 1.0}


def test_strengths_belong_to_img2img() -> None:
    with pytest.raises(ValueError, match="strengths apply to mode img2img only"):
        LaunderStage.Params(model="builtin:tiny-vae", count=1, strengths=[0.5])
