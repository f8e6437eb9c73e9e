"""Localized fakes: inpaint a masked region of a real parent (label fake, kind inpaint).

`model` picks the forger: `opencv:telea` or `opencv:ns` (classical, weights-free), or any diffusers
inpainting pipeline by Hub id / local folder / `builtin:tiny-sd-inpaint`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import cv2
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
from forgeset.generators.masks import MaskContext, mask_generators
from forgeset.manifests.schema import StageRecipe

OPENCV_METHODS = {"opencv:telea": cv2.INPAINT_TELEA, "opencv:ns": cv2.INPAINT_NS}


@manipulators.register("inpaint")
class InpaintStage(Manipulator):
    """Draws a mask per sample from its seed, edits inside it, and returns image and mask."""

    kind = "inpaint"
    localized = True

    class Params(ManipulatorParams):
        type: Literal["inpaint"] = "inpaint"
        mask: mask_generators.params_union() = Field(  # type: ignore[valid-type]
            default_factory=lambda: mask_generators.get("boxes").Params()
        )
        steps: int = Field(25, ge=1, le=1000)
        guidance: float = Field(7.5, ge=0.0, le=100.0)
        strength: float = Field(1.0, gt=0.0, le=1.0)
        paste_back: bool = Field(
            True, description="copy the parent's pixels outside the mask back (diffusion re-encodes all)"
        )
        radius: int = Field(5, ge=1, le=64, description="OpenCV inpainting radius")

        @model_validator(mode="before")
        @classmethod
        def _opencv_runs_on_cpu(cls, data: Any) -> Any:
            model = data.get("model") if isinstance(data, dict) else None
            if isinstance(model, str) and model in OPENCV_METHODS and data.get("device", "auto") == "auto":
                return {**data, "device": "cpu", "dtype": "float32"}
            return data

    params: Params

    @classmethod
    def size_multiple(cls, params: GeneratorParams) -> int:
        """OpenCV inpaints at any size; diffusion inpainting needs multiples of 8."""
        return 1 if params.model in OPENCV_METHODS else 8

    def __init__(self, params: ManipulatorParams, base_dir: Path, image_size: int) -> None:
        super().__init__(params, base_dir, image_size)
        self.pipe: Any = None
        self._device: str = "cpu"
        self._dtype: str = "uint8"
        self._revision: str | None = None
        self._gen_size: int | None = None

    @property
    def classical(self) -> bool:
        """Whether the forger is OpenCV's (no model to load)."""
        return self.params.model in OPENCV_METHODS

    def setup(self) -> None:
        if self.classical:
            import cv2 as opencv

            self._revision = f"opencv-{opencv.__version__}"
            return
        import torch
        from diffusers import AutoPipelineForInpainting

        quiet_diffusers()
        self._device, self._dtype = torch_device_and_dtype(self.params.device, self.params.dtype)
        location, revision, self._revision = resolve_model(self.params.model, self.params.revision, self.base_dir)
        pipe = AutoPipelineForInpainting.from_pretrained(
            location, revision=revision, dtype=getattr(torch, self._dtype), use_safetensors=True
        )
        pipe.set_progress_bar_config(disable=True)
        self.pipe = pipe.to(self._device)

    def manipulate(self, jobs: list[ManipulationJob], parents: list[ParentImage]) -> list[StageOutput | SampleRejected]:
        if self.pipe is None and not self.classical:
            self.setup()
        generator = mask_generators.get(self.params.mask.type)(self.params.mask)
        if parents:  # edits happen at the parents' size (the corpus size)
            self._gen_size = int(parents[0].pixels.shape[0])
        results: list[StageOutput | SampleRejected | None] = [None] * len(jobs)
        ready: list[tuple[int, np.ndarray]] = []
        for index, (job, parent) in enumerate(zip(jobs, parents, strict=True)):
            context = MaskContext(parent.pixels.shape[0], parent.pixels.shape[1], parent.annotation)
            try:
                ready.append((index, generator.make(np.random.default_rng(job.seed), context)))
            except SampleRejected as rejected:
                results[index] = rejected
        if not ready:
            return results  # type: ignore[return-value]
        chosen = [jobs[i] for i, _ in ready]
        originals = [parents[i].pixels for i, _ in ready]
        masks = [mask for _, mask in ready]
        if self.classical:
            method = OPENCV_METHODS[self.params.model]
            edited = [cv2.inpaint(p, m, self.params.radius, method) for p, m in zip(originals, masks, strict=True)]
        else:
            edited = self._diffusion(chosen, originals, masks)
        pasted = self.classical or self.params.paste_back
        mask_params = self.params.mask.model_dump(mode="json")
        for (index, mask), image, original in zip(ready, edited, originals, strict=True):
            if pasted:
                image = np.where(mask[..., None] > 0, image, original).astype(np.uint8)
            op = {"mask": mask_params, "paste_back": pasted, "radius": self.params.radius if self.classical else None}
            results[index] = StageOutput(
                pixels=np.ascontiguousarray(image),
                mask=mask,
                strength=self.params.strength,
                ops=[{"op": "inpaint", "params": op}],
            )
        return results  # type: ignore[return-value]  # every slot is filled by now

    def _diffusion(
        self, jobs: list[ManipulationJob], parents: list[np.ndarray], masks: list[np.ndarray]
    ) -> list[np.ndarray]:
        import torch
        from PIL import Image

        height, width = parents[0].shape[:2]
        with torch.inference_mode():
            result = self.pipe(
                prompt=[job.prompt for job in jobs],
                image=[Image.fromarray(p) for p in parents],
                mask_image=[Image.fromarray(m) for m in masks],
                height=height,
                width=width,
                strength=self.params.strength,
                num_inference_steps=self.params.steps,
                guidance_scale=self.params.guidance,
                generator=[torch.Generator("cpu").manual_seed(job.seed) for job in jobs],
                output_type="np",
            )
        return to_uint8(result.images)

    def recipe(self) -> StageRecipe:
        if self.classical:
            return StageRecipe(
                model=self.params.model,
                revision=self._revision,
                dtype=self._dtype,
                device="cpu",
                gen_size=self._gen_size,
            )
        return StageRecipe(
            model=self.params.model,
            revision=self._revision,
            scheduler=type(self.pipe.scheduler).__name__ if self.pipe is not None else None,
            steps=self.params.steps,
            guidance=float(self.params.guidance),
            dtype=self._dtype,
            device=self._device,
            gen_size=self._gen_size,
            **runtime_versions(),
        )
