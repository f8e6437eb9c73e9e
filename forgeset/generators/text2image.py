"""Text-to-image with any diffusers pipeline (AutoPipelineForText2Image) or a builtin tiny one.

Pipelines differ in what their call takes (SD3 and Flux take `max_sequence_length`, Flux takes
no negative prompt, PixArt has one text encoder and SDXL two...). The generator reads the call's
signature once after loading and passes what it accepts; a spec setting that the loaded pipeline
cannot honour is an error, never silently dropped.
"""

from __future__ import annotations

import inspect
import json
import time
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


@generators.register("text2image", default=True)
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
        true_cfg_scale: float | None = Field(
            None,
            gt=1.0,
            le=100.0,
            description="real CFG for guidance-distilled pipelines (Flux), to use a negative prompt",
        )
        max_sequence_length: int | None = Field(
            None,
            ge=1,
            le=4096,
            description="tokens for T5-style text encoders (SD3, Flux, PixArt); default: the model's",
        )
        native_size: bool = Field(
            False,
            description="generate at the model's own size (then the image policy resizes; both sizes are recorded)",
        )
        channels_last: bool = Field(False, description="channels_last memory format for the denoiser (GPU speed)")
        compile: bool = Field(
            False, description="compile the denoiser (regionally where diffusers supports it; slow first batch)"
        )
        vae_slicing: bool = Field(False, description="decode a batch one image at a time (large batches)")
        vae_tiling: bool = Field(False, description="decode in tiles (large sizes)")

    params: Params

    def __init__(self, params: GeneratorParams, base_dir: Path, image_size: int) -> None:
        super().__init__(params, base_dir, image_size)
        self.pipe: Any = None
        self._device = "cpu"
        self._dtype = "float32"
        self._revision: str | None = None
        self._call_args: set[str] = set()
        self._tensor_output = False
        self._license: str | None = None
        # Seconds the first batch took (with `compile`, mostly compilation); the bench reports it.
        self.warmup_s: float | None = None
        self._fits = params.planned_batch_size

    def setup(self) -> None:
        import torch
        from diffusers import AutoPipelineForText2Image

        pipe, location, revision = load_pipeline(self, AutoPipelineForText2Image, self.params.scheduler)
        self._call_args = set(inspect.signature(pipe.__call__).parameters)
        # "pt" output is [0, 1] where the pipeline post-processes with an image processor; a
        # two-stage pipeline (Kandinsky's prior + decoder) returns its decoder's raw [-1, 1].
        self._tensor_output = getattr(pipe, "image_processor", None) is not None and not hasattr(pipe, "prior_pipe")
        self._check_call_settings(type(pipe).__name__)
        if self.params.native_size and self.params.size is None:
            native = native_size(pipe)
            if native is None:
                raise ValueError(
                    f"{self.params.model}: the {type(pipe).__name__} pipeline states no native size; set size"
                )
            self.size = native
        denoiser = getattr(pipe, "unet", None) or getattr(pipe, "transformer", None)
        if denoiser is not None and self.params.channels_last:
            denoiser.to(memory_format=torch.channels_last)
        if denoiser is not None and self.params.compile:
            if getattr(denoiser, "_repeated_blocks", None):
                denoiser.compile_repeated_blocks()  # regional: one compiled graph reused by every repeated block
            else:
                compiled = torch.compile(denoiser)
                setattr(pipe, "unet" if getattr(pipe, "unet", None) is not None else "transformer", compiled)
        vae = getattr(pipe, "vae", None)
        if vae is not None and self.params.vae_slicing and hasattr(vae, "enable_slicing"):
            vae.enable_slicing()
        if vae is not None and self.params.vae_tiling and hasattr(vae, "enable_tiling"):
            vae.enable_tiling()
        self._license = self.params.license or model_card_license(location, self.params.model, revision)

    def _check_call_settings(self, pipeline: str) -> None:
        """Refuse a spec setting the loaded pipeline's call does not take (instead of dropping it)."""
        asked = {
            "negative_prompt": self.params.negative_prompt,
            "max_sequence_length": self.params.max_sequence_length,
            "true_cfg_scale": self.params.true_cfg_scale,
        }
        refused = sorted(name for name, value in asked.items() if value is not None and name not in self._call_args)
        if refused:
            raise ValueError(f"{self.params.model}: the {pipeline} pipeline takes no {', '.join(refused)}")
        if self.params.negative_prompt is None:
            if self.params.true_cfg_scale is not None:
                raise ValueError(f"{self.params.model}: true_cfg_scale does nothing without a negative_prompt")
            return
        if getattr(self.pipe, "prior_pipe", None) is not None:  # a two-stage (prior + decoder) pipeline
            raise ValueError(
                f"{self.params.model}: the {pipeline} pipeline's prior cannot take a negative prompt with "
                "per-sample seeds (diffusers pairs them wrongly); drop negative_prompt"
            )
        if "true_cfg_scale" in self._call_args and self.params.true_cfg_scale is None:
            raise ValueError(
                f"{self.params.model}: the {pipeline} pipeline's guidance is distilled; its negative prompt is used "
                "only with true_cfg_scale > 1 (two passes per step)"
            )
        if "true_cfg_scale" not in self._call_args and self.params.guidance <= 1.0:
            raise ValueError(
                f"{self.params.model}: a negative prompt needs guidance > 1 (classifier-free guidance is off at "
                f"{self.params.guidance:g})"
            )

    def call_arguments(self, jobs: list[GenerationJob], seeds: list[Any]) -> dict[str, Any]:
        """The pipeline call for a batch, with only the arguments its signature accepts."""
        wanted: dict[str, Any] = {
            "prompt": [job.prompt for job in jobs],
            "num_inference_steps": self.params.steps,
            "guidance_scale": self.params.guidance,
            "height": self.size,
            "width": self.size,
            "generator": seeds,
            "output_type": "np",
        }
        if self.params.negative_prompt:
            wanted["negative_prompt"] = [self.params.negative_prompt] * len(jobs)
        if self.params.max_sequence_length:
            wanted["max_sequence_length"] = self.params.max_sequence_length
        if self.params.true_cfg_scale:
            wanted["true_cfg_scale"] = self.params.true_cfg_scale
        # Generate at the asked size (PixArt would otherwise snap it to a bucket and resize back), and
        # keep the prompt as given: caption cleaning depends on which optional packages are installed.
        wanted["use_resolution_binning"] = False
        wanted["clean_caption"] = False
        return {name: value for name, value in wanted.items() if name in self._call_args}

    def prompts_used(self, jobs: list[GenerationJob]) -> list[str | None]:
        """The text each prompt's first tokenizer kept, where it cut the prompt (CLIP: 77 tokens)."""
        tokenizer = getattr(self.pipe, "tokenizer", None)
        if tokenizer is None:
            return [None] * len(jobs)
        limit = int(getattr(tokenizer, "model_max_length", 0) or 0)
        if self.params.max_sequence_length and getattr(self.pipe, "tokenizer_2", None) is None:
            limit = self.params.max_sequence_length  # a single T5-style encoder (PixArt) reads this many
        used: list[str | None] = []
        for job in jobs:
            ids = tokenizer(job.prompt, truncation=False, add_special_tokens=True)["input_ids"]
            if limit and len(ids) > limit:
                kept = tokenizer(job.prompt, truncation=True, max_length=limit)["input_ids"]
                used.append(tokenizer.decode(kept, skip_special_tokens=True))
            else:
                used.append(None)
        return used

    def generate(self, jobs: list[GenerationJob]) -> list[np.ndarray]:
        import torch

        if self.pipe is None:
            self.setup()
        if self.params.batch_size != "auto" or self._device != "cuda":
            return self._generate_batch(jobs)
        # batch_size: auto on a GPU: the planned batch, halved on out-of-memory until it fits. The
        # split changes float rounding by a level at most, so bytes then depend on the GPU's memory.
        images: list[np.ndarray] = []
        start = 0
        while start < len(jobs):
            chunk = jobs[start : start + self._fits]
            try:
                images += self._generate_batch(chunk)
            except torch.cuda.OutOfMemoryError:
                if self._fits == 1:
                    raise
                torch.cuda.empty_cache()
                self._fits = max(1, len(chunk) // 2)
                continue
            start += len(chunk)
        return images

    def _generate_batch(self, jobs: list[GenerationJob]) -> list[np.ndarray]:
        import torch

        # Seeds drive CPU generators so a sample's initial noise is the same on any device.
        seeds = [torch.Generator("cpu").manual_seed(job.seed) for job in jobs]
        arguments = self.call_arguments(jobs, seeds)
        if self._device == "cuda" and self._tensor_output:
            arguments["output_type"] = "pt"  # pixels leave the GPU as uint8, not float32
        started = time.perf_counter()
        with torch.inference_mode():
            images = self.pipe(**arguments).images
        if self.warmup_s is None:
            self.warmup_s = round(time.perf_counter() - started, 3)  # the first batch: compile or load warm-up
        if isinstance(images, torch.Tensor) and images.ndim == 4 and images.shape[1] == 3:
            quantized = (images.float() * 255).round().clamp(0, 255).to(torch.uint8)
            return list(quantized.permute(0, 2, 3, 1).contiguous().cpu().numpy())
        return to_uint8(np.asarray(images))

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


def native_size(pipe: Any) -> int | None:
    """The pipeline's own output size: its default sample size times the VAE's scale factor."""
    scale = int(getattr(pipe, "vae_scale_factor", 0) or getattr(pipe, "movq_scale_factor", 0) or 0)
    sample = getattr(pipe, "default_sample_size", None)
    if sample is None:
        denoiser = getattr(pipe, "unet", None) or getattr(pipe, "transformer", None)
        sample = getattr(getattr(denoiser, "config", None), "sample_size", None)
    if isinstance(sample, (list, tuple)):
        sample = sample[0]
    return int(sample) * scale if sample and scale else None


def scheduler_config(pipe: Any) -> str | None:
    """The scheduler's config as sorted JSON (what reproduces its timesteps), or None."""
    scheduler = getattr(pipe, "scheduler", None)
    if scheduler is None:
        return None
    config = {k: v for k, v in dict(scheduler.config).items() if not k.startswith("_")}
    return json.dumps(config, sort_keys=True, default=str)


def model_card_license(location: str, model: str, revision: str | None) -> str | None:
    """The license a model card (README.md front matter) states, from the local folder or the Hub cache."""
    import yaml

    card = Path(location) / "README.md"
    if not card.is_file():
        if location != model:  # a local folder or builtin model without a card
            return None
        try:
            from huggingface_hub import try_to_load_from_cache

            cached = try_to_load_from_cache(model, "README.md", revision=revision)
        except Exception:  # not a valid Hub id, or no cache: no license to read
            return None
        if not isinstance(cached, str):
            return None
        card = Path(cached)
    text = card.read_text(encoding="utf-8", errors="replace")
    if not text.startswith("---"):
        return None
    front = text.split("---", 2)[1] if text.count("---") >= 2 else ""
    try:
        data = yaml.safe_load(front)
    except yaml.YAMLError:
        return None
    value = data.get("license") if isinstance(data, dict) else None
    return str(value) if isinstance(value, str) else None


def load_pipeline(stage: Any, loader: Any, scheduler: str | None) -> tuple[Any, str, str | None]:
    """Load `stage.params.model` with `loader.from_pretrained` (safetensors only) onto the stage's device.

    Sets the stage's `pipe`, `_device`, `_dtype` and `_revision` (the recorded one); swaps in the
    named scheduler. Returns the pipeline, where it was loaded from and the revision passed.
    """
    import diffusers
    import torch

    quiet_diffusers()
    params = stage.params
    stage._device, stage._dtype = torch_device_and_dtype(params.device, params.dtype)
    location, revision, recorded = resolve_model(params.model, params.revision, stage.base_dir)
    pipe = loader.from_pretrained(location, revision=revision, dtype=getattr(torch, stage._dtype), use_safetensors=True)
    if scheduler:
        pipe.scheduler = getattr(diffusers, SCHEDULERS[scheduler]).from_config(pipe.scheduler.config)
    pipe.set_progress_bar_config(disable=True)
    stage.pipe = pipe.to(stage._device)
    stage._revision = recorded if recorded else hub_commit(params.model, params.revision)
    return stage.pipe, location, revision
