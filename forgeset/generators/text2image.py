"""Text-to-image with any diffusers pipeline (AutoPipelineForText2Image) or a builtin tiny one."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field

from forgeset.generators.base import (
    GenerationJob,
    Generator,
    GeneratorParams,
    generators,
    quiet_diffusers,
    resolve_model,
    runtime_versions,
    to_uint8,
    torch_device_and_dtype,
)
from forgeset.manifests.schema import StageRecipe

# Scheduler names a spec may use -> diffusers class name (swapped in with from_config).
SCHEDULERS = {
    "ddim": "DDIMScheduler",
    "ddpm": "DDPMScheduler",
    "pndm": "PNDMScheduler",
    "lms": "LMSDiscreteScheduler",
    "euler": "EulerDiscreteScheduler",
    "euler-ancestral": "EulerAncestralDiscreteScheduler",
    "dpm-multistep": "DPMSolverMultistepScheduler",
    "unipc": "UniPCMultistepScheduler",
}


def hub_commit(model: str, revision: str | None) -> str | None:
    """The commit hash a Hub id resolved to in the local cache, if it was loaded from there."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    cached = try_to_load_from_cache(model, "model_index.json", revision=revision)
    if isinstance(cached, str) and "/snapshots/" in cached:
        return cached.split("/snapshots/")[1].split("/")[0]
    return None


@generators.register("text2image")
class DiffusersText2Image(Generator):
    """A text-to-image pipeline loaded with use_safetensors=True; each sample has its own seed."""

    kind = "text2image"

    class Params(GeneratorParams):
        type: Literal["text2image"] = "text2image"
        steps: int = Field(25, ge=1, le=1000)
        guidance: float = Field(7.5, ge=0.0, le=100.0)
        scheduler: Literal[tuple(SCHEDULERS)] | None = Field(  # type: ignore[valid-type]
            None, description="swap the model's scheduler; default: the model's own"
        )
        negative_prompt: str | None = None

    params: Params

    def __init__(self, params: GeneratorParams, base_dir: Path, image_size: int) -> None:
        super().__init__(params, base_dir, image_size)
        self.pipe: Any = None
        self._device = "cpu"
        self._dtype = "float32"
        self._revision: str | None = None

    def setup(self) -> None:
        import diffusers
        import torch
        from diffusers import AutoPipelineForText2Image

        quiet_diffusers()
        self._device, self._dtype = torch_device_and_dtype(self.params.device, self.params.dtype)
        location, revision, recorded = resolve_model(self.params.model, self.params.revision, self.base_dir)
        pipe = AutoPipelineForText2Image.from_pretrained(
            location, revision=revision, dtype=getattr(torch, self._dtype), use_safetensors=True
        )
        if self.params.scheduler:
            scheduler_cls = getattr(diffusers, SCHEDULERS[self.params.scheduler])
            pipe.scheduler = scheduler_cls.from_config(pipe.scheduler.config)
        pipe.set_progress_bar_config(disable=True)
        self.pipe = pipe.to(self._device)
        self._revision = recorded if recorded else hub_commit(self.params.model, self.params.revision)

    def generate(self, jobs: list[GenerationJob]) -> list[np.ndarray]:
        import torch

        if self.pipe is None:
            self.setup()
        # Seeds drive CPU generators so a sample's initial noise is the same on any device.
        seeds = [torch.Generator("cpu").manual_seed(job.seed) for job in jobs]
        negative = [self.params.negative_prompt] * len(jobs) if self.params.negative_prompt else None
        with torch.inference_mode():
            result = self.pipe(
                prompt=[job.prompt for job in jobs],
                negative_prompt=negative,
                num_inference_steps=self.params.steps,
                guidance_scale=self.params.guidance,
                height=self.size,
                width=self.size,
                generator=seeds,
                output_type="np",
            )
        return to_uint8(result.images)

    def recipe(self) -> StageRecipe:
        scheduler = type(self.pipe.scheduler).__name__ if self.pipe is not None else None
        return StageRecipe(
            model=self.params.model,
            revision=self._revision,
            scheduler=scheduler,
            steps=self.params.steps,
            guidance=float(self.params.guidance),
            dtype=self._dtype,
            device=self._device,
            gen_size=self.size,
            **runtime_versions(),
        )
