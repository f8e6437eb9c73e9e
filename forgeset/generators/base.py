"""Base of the model-holding stages: `setup()` loads weights on the worker, never `__init__`."""

from __future__ import annotations

import hashlib
import json
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

import numpy as np
from pydantic import Field

from forgeset.builders.prompts import prompt_sources
from forgeset.core.naming import NAME_PATTERN, slug
from forgeset.core.registry import Registry
from forgeset.core.rejection import SampleRejected
from forgeset.core.strict_model import StrictModel
from forgeset.manifests.schema import StageRecipe

# The planned batch of `batch_size: auto`; on a GPU the generator halves it until a batch fits.
AUTO_BATCH = 32


class GeneratorParams(StrictModel):
    """Fields every generator has; subclasses add theirs and a `type` literal."""

    type: str
    name: str | None = Field(None, pattern=NAME_PATTERN, description="used in keys; default from model")
    model: str = Field(min_length=1, description="Hub id, local folder, or builtin:tiny-sd")
    revision: str | None = Field(None, description="Hub revision (branch, tag or commit)")
    license: str | None = Field(None, description="the model's license, shown in the dataset card")
    count: int = Field(gt=0, description="number of images to generate")
    batch_size: Annotated[int, Field(gt=0)] | Literal["auto"] = Field(
        8, description="images per model call; auto: the largest that fits the GPU, at most AUTO_BATCH"
    )
    size: int | None = Field(None, ge=8, le=4096, description="generation size; default: image.size")
    dtype: Literal["auto", "float32", "float16", "bfloat16"] = Field(
        "auto", description="auto: float16 on CUDA, float32 on CPU"
    )
    device: Literal["auto", "cpu", "cuda"] = "auto"
    prompts: prompt_sources.params_union() | None = Field(  # type: ignore[valid-type]
        None, description="prompts for this generator; default: the spec's top-level prompts"
    )

    @property
    def planned_batch_size(self) -> int:
        """The batch the plan deals jobs in (with `auto`, the generator may split it to fit memory)."""
        return AUTO_BATCH if self.batch_size == "auto" else self.batch_size

    @property
    def generator_name(self) -> str:
        """The name used in keys and the manifest's `generator` column."""
        return self.name or slug(self.model.removeprefix("builtin:").rsplit("/", 1)[-1])


@dataclass(frozen=True)
class GenerationJob:
    """One image to make: its key, its own seed, and its prompt."""

    key: str
    seed: int
    prompt: str


class Stage(ABC):
    """A model-holding stage: `setup()` loads weights on the worker, never `__init__`.

    Its traits are class attributes, read by the spec, planner, card and validate, so that no
    generic module names a stage type: `kind` (the manifest's kind of its samples), `needs_prompts`,
    `localized` (it edits a region: the corpus then carries KEY.mask.png), and `strengths()` (the
    strengths one parent fans out over).
    """

    Params: ClassVar[type[GeneratorParams]]
    kind: ClassVar[str]
    needs_prompts: ClassVar[bool] = False
    localized: ClassVar[bool] = False

    def __init__(self, params: GeneratorParams, base_dir: Path, image_size: int) -> None:
        self.params = params
        self.base_dir = base_dir
        self.size = params.size or image_size

    @classmethod
    def strengths(cls, params: GeneratorParams) -> list[float | None]:
        """The strengths each input is made at (one sample each); [None] when the stage has none."""
        return [None]

    @classmethod
    def size_multiple(cls, params: GeneratorParams) -> int:
        """The corpus size must be a multiple of this (8 for latent-diffusion models)."""
        return 8

    @abstractmethod
    def setup(self) -> None:
        """Load the model; called once on the worker that runs this stage."""

    @abstractmethod
    def recipe(self) -> StageRecipe:
        """What this stage used (model, revision, scheduler, dtype, device...), recorded per sample."""


class Generator(Stage):
    """Turns jobs (seed, prompt) into new images."""

    needs_prompts = True

    @abstractmethod
    def generate(self, jobs: list[GenerationJob]) -> list[np.ndarray]:
        """One HxWx3 uint8 array per job, in job order; a job's pixels depend only on its seed."""

    @classmethod
    def own_prompts(cls, params: GeneratorParams) -> list[str] | None:
        """Prompts the generator deals from its own params (e.g. class names), instead of a prompt source."""
        return None

    def prompts_used(self, jobs: list[GenerationJob]) -> list[str | None]:
        """Per job, the text the model actually saw where its tokenizer cut the prompt; else None."""
        return [None] * len(jobs)


generators: Registry = Registry("generator")


def local_model_revision(folder: Path) -> str:
    """A content id for a local model folder: its model_index.json plus file names and sizes."""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(json.dumps([path.relative_to(folder).as_posix(), path.stat().st_size]).encode())
    index = folder / "model_index.json"
    if index.exists():
        digest.update(index.read_bytes())
    return f"local-{digest.hexdigest()[:16]}"


@dataclass
class StageOutput:
    """One produced image plus what only this sample knows (mask, strength, fidelity to its parent, ops)."""

    pixels: np.ndarray
    mask: np.ndarray | None = None
    strength: float | None = None
    psnr: float | None = None
    ssim: float | None = None
    prompt_used: str | None = None
    ops: list[dict[str, Any]] = field(default_factory=list)


class ManipulatorParams(GeneratorParams):
    """A stage that edits or re-synthesizes real parents; `count` is the number of parents."""

    sources: list[str] | None = Field(None, description="real sources to take parents from; default all")


@dataclass(frozen=True)
class ManipulationJob:
    """One parent to edit: the child's key and seed, the prompt, and the strength to use."""

    key: str
    seed: int
    prompt: str
    parent_key: str
    strength: float | None = None


@dataclass(frozen=True)
class ParentImage:
    """A real parent at the corpus size, with its source annotation (masks, polygons) if any."""

    pixels: np.ndarray
    annotation: Any = None


class Manipulator(Stage):
    """A model-holding stage whose inputs are real parents at the corpus size."""

    @abstractmethod
    def manipulate(self, jobs: list[ManipulationJob], parents: list[ParentImage]) -> list[StageOutput | SampleRejected]:
        """One result per job; a job's result depends only on its parent, seed and parameters."""


manipulators: Registry = Registry("manipulation")


def stage_class(params: GeneratorParams) -> type[Stage]:
    """The registered generator or manipulation class of a spec entry."""
    registry = manipulators if params.type in manipulators.names() else generators
    return registry.get(params.type)


def runtime_versions() -> dict[str, str]:
    """The diffusers and torch versions a stage ran with (recorded per sample)."""
    import diffusers
    import torch

    return {"diffusers_version": diffusers.__version__, "torch_version": torch.__version__}


def torch_device_and_dtype(device: str, dtype: str) -> tuple[str, str]:
    """Resolve `auto` device and dtype; on CPU pin torch to one thread (bytes must not depend on it)."""
    import torch

    resolved = "cuda" if device == "cuda" or (device == "auto" and torch.cuda.is_available()) else "cpu"
    if resolved == "cpu":
        torch.set_num_threads(1)
    if dtype == "auto":
        dtype = "float16" if resolved == "cuda" else "float32"
    return resolved, dtype


def resolve_model(model: str, revision: str | None, base_dir: Path) -> tuple[str, str | None, str | None]:
    """(what from_pretrained loads, the revision to pass it, the revision to record)."""
    from forgeset.generators.builtin import builtin_revision, is_builtin, materialize_builtin

    if is_builtin(model):
        return str(materialize_builtin(model)), None, builtin_revision(model)
    local = Path(model).expanduser()
    local = local if local.is_absolute() else base_dir / local
    if local.is_dir():
        return str(local), None, local_model_revision(local)
    return model, revision, revision


def quiet_diffusers() -> None:
    """Silence diffusers' and transformers' info logs on workers (progress is ours)."""
    import diffusers
    import transformers

    diffusers.utils.logging.set_verbosity_error()
    diffusers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()


def to_uint8(images: np.ndarray) -> list[np.ndarray]:
    """diffusers' float [0, 1] NHWC output to uint8 arrays, rounded as numpy_to_pil does."""
    return [np.ascontiguousarray((image * 255).round().clip(0, 255).astype(np.uint8)) for image in images]
