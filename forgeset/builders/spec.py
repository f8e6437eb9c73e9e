"""The YAML spec: pydantic models (extra keys forbidden), loading with field-path errors, hashing."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import Field, ValidationError, model_validator

from forgeset.builders.prompts import prompt_sources
from forgeset.builders.sources import real_sources
from forgeset.core.naming import NAME_PATTERN
from forgeset.core.strict_model import StrictModel
from forgeset.generators import generators, manipulators
from forgeset.generators.base import stage_class
from forgeset.imaging.policy import ImagePolicy
from forgeset.manifests.layout import HOLDOUT_SPLIT, SPLITS
from forgeset.perturbations.adversarial import AdversarialParams
from forgeset.perturbations.stage import PerturbStageParams


class ShardPolicy(StrictModel):
    """How samples are grouped into tar shards."""

    size: int = Field(default=256, gt=0, le=100_000, description="samples per shard")


class SplitPolicy(StrictModel):
    """Split fractions; a sample's split is a pure function of the spec seed and its lineage group."""

    train: float = Field(default=0.8, ge=0.0, le=1.0)
    val: float = Field(default=0.1, ge=0.0, le=1.0)
    test: float = Field(default=0.1, ge=0.0, le=1.0)
    holdout_generators: list[str] = Field(
        default_factory=list, description=f"generators whose samples (and lineage) go to {HOLDOUT_SPLIT} only"
    )

    @model_validator(mode="after")
    def _sum_to_one(self) -> SplitPolicy:
        total = self.train + self.val + self.test
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"train + val + test must be 1, got {total:g}")
        return self

    def fractions(self) -> list[tuple[str, float]]:
        """(split, fraction) in the fixed order train, val, test."""
        return [(name, getattr(self, name)) for name in SPLITS]


class BiasGate(StrictModel):
    """A metadata-only probe (width, height, file size, format, quality) must not tell real from fake."""

    max_auc: float | None = Field(
        default=None, ge=0.5, le=1.0, description="fail the build (after writing it) when the probe's AUC is higher"
    )


class Spec(StrictModel):
    """A whole corpus: sources of real images, generators, and one output policy for all."""

    name: str = Field(pattern=NAME_PATTERN, description="corpus name (lower-case, digits, dashes)")
    description: str | None = None
    license: str = Field("other", description="the dataset's license (Hub license id), for the card")
    seed: int = Field(0, ge=0, description="root of every per-sample seed and split draw")
    image: ImagePolicy = Field(default_factory=ImagePolicy)
    shards: ShardPolicy = Field(default_factory=ShardPolicy)
    splits: SplitPolicy = Field(default_factory=SplitPolicy)
    real: list[real_sources.params_union()] = Field(default_factory=list)  # type: ignore[valid-type]
    prompts: prompt_sources.params_union() | None = None  # type: ignore[valid-type]
    generate: list[generators.params_union()] = Field(default_factory=list)  # type: ignore[valid-type]
    manipulate: list[manipulators.params_union()] = Field(default_factory=list)  # type: ignore[valid-type]
    perturb: list[PerturbStageParams] = Field(default_factory=list)
    adversarial: list[AdversarialParams] = Field(default_factory=list)
    bias_gate: BiasGate = Field(default_factory=BiasGate)

    @model_validator(mode="after")
    def _consistent(self) -> Spec:
        if not self.real and not self.generate:
            raise ValueError("the spec makes nothing: give at least one `real` source or `generate` entry")
        names = (
            [source.source_name for source in self.real]
            + [g.generator_name for g in self.generate]
            + [m.generator_name for m in self.manipulate]
        )
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"source, generator and manipulation names must be unique; repeated: {duplicates}")
        stages = [p.stage_name for p in self.perturb] + [a.stage_name for a in self.adversarial]
        if len(stages) != len(set(stages)):
            raise ValueError(f"perturb and adversarial stage names must be unique; got {stages}")
        real_names = {source.source_name for source in self.real}
        for index, generator in enumerate(self.generate):
            prompts = generator.prompts or self.prompts
            if prompts is None and stage_class(generator).needs_prompts:
                raise ValueError(f"generate[{index}] has no prompts: set `prompts` on it or at the top level")
            paired = prompts.paired_source if prompts is not None else None
            if paired is not None and paired not in real_names:
                raise ValueError(f"generate[{index}] takes captions from {paired!r}, which is not a real source")
        for index, stage in enumerate(self.manipulate):
            unknown = sorted(set(stage.sources or []) - real_names)
            if not self.real or unknown:
                raise ValueError(f"manipulate[{index}] needs real parents; unknown sources: {unknown or 'none given'}")
            multiple = stage_class(stage).size_multiple(stage)
            if self.image.size % multiple:
                raise ValueError(f"manipulate[{index}] needs image.size to be a multiple of {multiple}")
        made = {g.generator_name for g in self.generate} | {m.generator_name for m in self.manipulate}
        unknown = sorted(set(self.splits.holdout_generators) - made)
        if unknown:
            raise ValueError(f"splits.holdout_generators names no generator or manipulation: {unknown}")
        return self

    @property
    def localized(self) -> bool:
        """Whether any stage edits locally: then every sample carries KEY.mask.png."""
        return any(stage_class(stage).localized for stage in (*self.generate, *self.manipulate))

    @property
    def stages(self) -> list[Any]:
        """Every generate and manipulate entry, in spec order."""
        return [*self.generate, *self.manipulate]

    def canonical_json(self) -> str:
        """Every field, defaults filled, keys sorted: what the spec hash is taken over."""
        return json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))

    def sha256(self) -> str:
        """The spec hash that names this corpus's content."""
        return hashlib.sha256(self.canonical_json().encode()).hexdigest()

    def resolved_yaml(self) -> str:
        """The spec with every default filled in, as written to OUT/spec.resolved.yaml."""
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False, allow_unicode=True)


class SpecError(Exception):
    """A spec that cannot be used; `problems` are (field path, message) pairs."""

    def __init__(self, source: str, problems: list[tuple[str, str]]) -> None:
        self.source = source
        self.problems = problems
        lines = "\n".join(f"  {path}: {message}" if path else f"  {message}" for path, message in problems)
        super().__init__(f"invalid spec {source}:\n{lines}")


@dataclass(frozen=True)
class LoadedSpec:
    """A validated spec and the folder its relative paths are resolved against."""

    spec: Spec
    base_dir: Path


def _union_tags() -> set[str]:
    from forgeset.generators.masks import mask_generators
    from forgeset.perturbations.ops import perturb_ops

    registries = (real_sources, generators, manipulators, prompt_sources, mask_generators, perturb_ops)
    return {name for registry in registries for name in registry.names()}


_UNION_TAGS = _union_tags()


def _field_path(loc: tuple[Any, ...]) -> str:
    """pydantic's error location as `generate[0].count` (union tags dropped)."""
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif isinstance(part, str) and part in _UNION_TAGS:
            continue  # discriminator tag pydantic inserts for tagged unions
        else:
            path += f".{part}" if path else str(part)
    return path


def parse_spec(data: Any, source: str = "<spec>") -> Spec:
    """Validate already-parsed YAML; raise SpecError naming each bad field."""
    if not isinstance(data, dict):
        raise SpecError(source, [("", "the spec must be a YAML mapping")])
    try:
        return Spec.model_validate(data)
    except ValidationError as err:
        problems = []
        for error in err.errors(include_url=False):
            message = error["msg"].removeprefix("Value error, ")
            if error["type"] == "extra_forbidden":
                message = "unknown field (not allowed here)"
            problems.append((_field_path(error["loc"]), message))
        raise SpecError(source, problems) from None


def load_spec(path: Path) -> LoadedSpec:
    """Read and validate a YAML spec file; relative paths inside it are relative to its folder."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise SpecError(str(path), [("", f"cannot read the spec file: {err.strerror or err}")]) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise SpecError(str(path), [("", f"not valid YAML: {err}")]) from None
    return LoadedSpec(parse_spec(data, str(path)), path.resolve().parent)
