"""Class-conditional generation with a DiT-style pipeline (DiTPipeline) or the builtin tiny one.

Such a pipeline takes ImageNet-style class ids, not prompts. The spec lists `classes` (label names
the pipeline's id2label map knows, or ids); the planner deals them to jobs as their prompt strings,
and each job's prompt is mapped back to a class id here. The output size is the model's own
(transformer sample_size x VAE scale factor): the call takes no size.
"""

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
    runtime_versions,
    to_uint8,
)
from forgeset.generators.text2image import load_pipeline, model_card_license, scheduler_config
from forgeset.manifests.schema import StageRecipe

# DiTPipeline calls scheduler.step without the per-sample generators, so a stochastic scheduler
# (ddpm, euler-ancestral) would draw from torch's global RNG: only deterministic ones are offered.
DETERMINISTIC_SCHEDULERS = ("ddim", "pndm", "lms", "euler", "dpm-multistep", "unipc")


@generators.register("class2image")
class DiffusersClass2Image(Generator):
    """A class-conditional pipeline loaded with use_safetensors=True; each sample has its own seed."""

    kind = "class2image"
    needs_prompts = False

    class Params(GeneratorParams):
        type: Literal["class2image"] = "class2image"
        steps: int = Field(25, ge=1, le=1000)
        guidance: float = Field(4.0, ge=0.0, le=100.0, description="classifier-free guidance; off at <= 1")
        classes: list[str | int] = Field(
            min_length=1, description="class names from the model's id2label (e.g. `tabby`) or class ids"
        )
        scheduler: Literal[DETERMINISTIC_SCHEDULERS] | None = Field(  # type: ignore[valid-type]
            None, description="swap the model's scheduler; default: the model's own"
        )

    params: Params

    def __init__(self, params: GeneratorParams, base_dir: Path, image_size: int) -> None:
        super().__init__(params, base_dir, image_size)
        self.pipe: Any = None
        self._device = "cpu"
        self._dtype = "float32"
        self._revision: str | None = None
        self._license: str | None = None

    @classmethod
    def own_prompts(cls, params: GeneratorParams) -> list[str] | None:
        """The prompt strings to deal to jobs: one per listed class, in order (ids as decimal text)."""
        assert isinstance(params, DiffusersClass2Image.Params)
        return [str(name) for name in params.classes]

    def setup(self) -> None:
        from diffusers import DiTPipeline

        pipe, location, revision = load_pipeline(self, DiTPipeline, self.params.scheduler)
        self._license = self.params.license or model_card_license(location, self.params.model, revision)
        native = class_pipeline_size(pipe)
        if self.params.size is None:
            self.size = native
        elif self.params.size != native:
            raise ValueError(
                f"{self.params.model}: {type(pipe).__name__} generates at its own size only ({native} px); "
                f"drop `size` or set it to {native}"
            )
        for name in self.params.classes:  # fail at setup, not in the middle of a shard
            self.class_id(name)

    def class_id(self, name: str | int) -> int:
        """A class name (from the pipeline's id2label, exact or case-insensitive) or id -> the class id."""
        labels: dict[str, int] = dict(getattr(self.pipe, "labels", None) or {})
        if isinstance(name, int):
            class_id = name
        elif name in labels:
            class_id = labels[name]
        elif name.strip().lower() in (folded := {label.lower(): value for label, value in labels.items()}):
            class_id = folded[name.strip().lower()]
        elif name.strip().isdigit():
            class_id = int(name)
        else:
            known = ", ".join(sorted(labels)[:20]) or "none: this model has no id2label, give class ids"
            raise ValueError(f"{self.params.model}: unknown class {name!r}; known names: {known}")
        count = int(self.pipe.transformer.config.num_embeds_ada_norm)
        if not 0 <= class_id < count:
            raise ValueError(f"{self.params.model}: class id {class_id} is outside 0..{count - 1}")
        return class_id

    def generate(self, jobs: list[GenerationJob]) -> list[np.ndarray]:
        import torch

        if self.pipe is None:
            self.setup()
        # Seeds drive CPU generators so a sample's initial noise is the same on any device.
        seeds = [torch.Generator("cpu").manual_seed(job.seed) for job in jobs]
        with torch.inference_mode():
            result = self.pipe(
                class_labels=[self.class_id(job.prompt) for job in jobs],
                num_inference_steps=self.params.steps,
                guidance_scale=self.params.guidance,
                generator=seeds,
                output_type="np",
            )
        return to_uint8(result.images)

    def recipe(self) -> StageRecipe:
        scheduler = type(self.pipe.scheduler).__name__ if self.pipe is not None else None
        return StageRecipe(
            model=self.params.model,
            revision=self._revision,
            pipeline=type(self.pipe).__name__ if self.pipe is not None else None,
            scheduler=scheduler,
            scheduler_config=scheduler_config(self.pipe),
            license=self._license,
            steps=self.params.steps,
            guidance=float(self.params.guidance),
            dtype=self._dtype,
            device=self._device,
            gen_size=self.size,
            **runtime_versions(),
        )


def class_pipeline_size(pipe: Any) -> int:
    """A DiT-style pipeline's only output size: the transformer's sample_size x the VAE's scale factor."""
    sample = pipe.transformer.config.sample_size
    sample = sample[0] if isinstance(sample, (list, tuple)) else sample
    scale = 2 ** (len(pipe.vae.config.block_out_channels) - 1)
    return int(sample) * scale
