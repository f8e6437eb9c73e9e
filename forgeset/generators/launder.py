"""Laundering: every pixel of a real parent re-synthesized (label fake, kind launder).

`mode: vae` passes the parent through a diffusion autoencoder (encode, take the latent mean,
decode). `mode: img2img` runs an image-to-image pipeline at each of `strengths`, one sample per
strength, since the laundering study left strength > 0 unexplored.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, TypedDict

import numpy as np
from pydantic import Field, model_validator

from forgeset.core.rejection import SampleRejected
from forgeset.generators.base import (
    GeneratorParams,
    ManipulationJob,
    Manipulator,
    ManipulatorParams,
    ParentImage,
    StageOutput,
    manipulators,
    quiet_diffusers,
    resolve_model,
    runtime_versions,
    to_uint8,
    torch_device_and_dtype,
)
from forgeset.manifests.schema import StageRecipe


class Fidelity(TypedDict):
    """`fidelity`'s result, the `psnr`/`ssim` keyword arguments of `StageOutput`."""

    psnr: float
    ssim: float


def fidelity(parent: np.ndarray, image: np.ndarray) -> Fidelity:
    """PSNR (dB, capped at 100 for identical images) and SSIM of `image` against its parent."""
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    if np.array_equal(parent, image):
        return {"psnr": 100.0, "ssim": 1.0}
    return {
        "psnr": round(float(peak_signal_noise_ratio(parent, image, data_range=255)), 4),
        "ssim": round(float(structural_similarity(parent, image, channel_axis=2, data_range=255)), 6),
    }


@manipulators.register("launder")
class LaunderStage(Manipulator):
    """VAE round trip or img2img sweep of real parents."""

    kind = "launder"

    class Params(ManipulatorParams):
        type: Literal["launder"] = "launder"
        mode: Literal["vae", "img2img"] = "vae"
        subfolder: str | None = Field(None, description="e.g. `vae` to take the autoencoder of a pipeline repo")
        strengths: list[float] = Field(default_factory=lambda: [0.3], min_length=1)
        steps: int = Field(25, ge=1, le=1000)
        guidance: float = Field(7.5, ge=0.0, le=100.0)

        @model_validator(mode="after")
        def _strengths(self) -> LaunderStage.Params:
            if any(not 0.0 < s <= 1.0 for s in self.strengths):
                raise ValueError("strengths must lie in (0, 1]")
            if self.mode == "vae" and self.strengths != [0.3]:
                raise ValueError("strengths apply to mode img2img only")
            return self

    params: Params

    @classmethod
    def strengths(cls, params: GeneratorParams) -> list[float | None]:
        """img2img makes one sample per strength; the VAE round trip has no strength."""
        if isinstance(params, LaunderStage.Params) and params.mode == "img2img":
            return list(params.strengths)
        return [None]

    def __init__(self, params: ManipulatorParams, base_dir: Path, image_size: int) -> None:
        super().__init__(params, base_dir, image_size)
        self.model: Any = None
        self._device: str = "cpu"
        self._dtype: str = "float32"
        self._revision: str | None = None
        self._gen_size: int | None = None

    def setup(self) -> None:
        import torch

        quiet_diffusers()
        self._device, self._dtype = torch_device_and_dtype(self.params.device, self.params.dtype)
        location, revision, self._revision = resolve_model(self.params.model, self.params.revision, self.base_dir)
        dtype = getattr(torch, self._dtype)
        if self.params.mode == "vae":
            from diffusers import AutoencoderKL

            self.model = AutoencoderKL.from_pretrained(
                location, subfolder=self.params.subfolder, revision=revision, dtype=dtype, use_safetensors=True
            ).to(self._device)
        else:
            from diffusers import AutoPipelineForImage2Image

            pipe = AutoPipelineForImage2Image.from_pretrained(
                location, revision=revision, dtype=dtype, use_safetensors=True
            )
            pipe.set_progress_bar_config(disable=True)
            self.model = pipe.to(self._device)

    def manipulate(
        self, jobs: list[ManipulationJob], parent_images: list[ParentImage]
    ) -> list[StageOutput | SampleRejected]:
        if self.model is None:
            self.setup()
        parents = [parent.pixels for parent in parent_images]
        if parents:  # re-synthesis happens at the parents' size (the corpus size)
            self._gen_size = int(parents[0].shape[0])
        images = self._round_trip(parents) if self.params.mode == "vae" else self._img2img(jobs, parents)
        outputs: list[StageOutput | SampleRejected] = []
        for job, parent, image in zip(jobs, parents, images, strict=True):
            strength = None if self.params.mode == "vae" else job.strength
            outputs.append(
                StageOutput(
                    pixels=image,
                    strength=strength,
                    **fidelity(parent, image),
                    ops=[
                        {
                            "op": "launder",
                            "params": {
                                "mode": self.params.mode,
                                "strength": strength,
                                "subfolder": self.params.subfolder,
                            },
                        }
                    ],
                )
            )
        return outputs

    def _round_trip(self, parents: list[np.ndarray]) -> list[np.ndarray]:
        import torch

        batch = torch.from_numpy(np.stack(parents)).permute(0, 3, 1, 2).float() / 127.5 - 1.0
        batch = batch.to(self._device, getattr(torch, self._dtype))
        with torch.inference_mode():
            latents = self.model.encode(batch).latent_dist.mode()
            decoded = self.model.decode(latents).sample
        images = ((decoded.float().clamp(-1, 1) + 1.0) / 2.0).permute(0, 2, 3, 1).cpu().numpy()
        return to_uint8(images)

    def _img2img(self, jobs: list[ManipulationJob], parents: list[np.ndarray]) -> list[np.ndarray]:
        import torch
        from PIL import Image

        # diffusers takes one strength per call: run each strength's jobs together, keep job order.
        by_strength: dict[float, list[int]] = {}
        for index, job in enumerate(jobs):
            by_strength.setdefault(float(job.strength or 0.0), []).append(index)
        results: dict[int, np.ndarray] = {}
        for strength, indices in by_strength.items():
            with torch.inference_mode():
                images = self.model(
                    prompt=[jobs[i].prompt for i in indices],
                    image=[Image.fromarray(parents[i]) for i in indices],
                    strength=strength,
                    num_inference_steps=self.params.steps,
                    guidance_scale=self.params.guidance,
                    generator=[torch.Generator("cpu").manual_seed(jobs[i].seed) for i in indices],
                    output_type="np",
                ).images
            results.update(zip(indices, to_uint8(images), strict=True))
        return [results[i] for i in range(len(jobs))]

    def recipe(self) -> StageRecipe:
        img2img = self.params.mode == "img2img"
        return StageRecipe(
            model=self.params.model + (f"/{self.params.subfolder}" if self.params.subfolder else ""),
            revision=self._revision,
            scheduler=type(self.model.scheduler).__name__ if img2img and self.model is not None else None,
            steps=self.params.steps if img2img else None,
            guidance=float(self.params.guidance) if img2img else None,
            dtype=self._dtype,
            device=self._device,
            gen_size=self._gen_size,
            **runtime_versions(),
        )
