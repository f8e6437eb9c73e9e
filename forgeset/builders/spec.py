"""The YAML spec: pydantic models (extra keys forbidden), loading with field-path errors, hashing."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, Field, ValidationError, ValidatorFunctionWrapHandler, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

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
from forgeset.quality import QualityCheck

MAX_COUNT = 10_000_000
"""The most samples one `generate` entry makes, or parents one `manipulate` entry edits."""
MAX_SEED = 2**63 - 1
MAX_SPEC_BYTES = 10 * 2**20
"""A spec is a short YAML file; anything larger is refused before it is parsed."""
MAX_DEPTH = 32
"""How deeply a spec's mappings and lists may nest (a valid spec needs fewer than 10 levels)."""


class ShardPolicy(StrictModel):
    """How samples are grouped into tar shards."""

    size: int = Field(default=256, gt=0, le=100_000, strict=True, description="samples per shard")
    min_per_split: int = Field(
        default=8,
        gt=0,
        le=100_000,
        strict=True,
        description="shards every split gets at least (fewer only when it has fewer lineage groups), "
        "so a multi-worker DataLoader finds a shard per worker",
    )


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
    seed: int = Field(0, ge=0, le=MAX_SEED, strict=True, description="root of every per-sample seed and split draw")
    image: ImagePolicy = Field(default_factory=ImagePolicy)
    shards: ShardPolicy = Field(default_factory=ShardPolicy)
    splits: SplitPolicy = Field(default_factory=SplitPolicy)
    real: list[real_sources.params_union()] = Field(default_factory=list)  # type: ignore[valid-type]
    prompts: prompt_sources.params_union() | None = None  # type: ignore[valid-type]
    generate: list[generators.params_union()] = Field(default_factory=list)  # type: ignore[valid-type]
    manipulate: list[manipulators.params_union()] = Field(default_factory=list)  # type: ignore[valid-type]
    perturb: list[PerturbStageParams] = Field(default_factory=list)
    adversarial: list[AdversarialParams] = Field(default_factory=list)
    quality: list[QualityCheck] = Field(
        default_factory=list, description="scores of every fake after generation; action reject drops it"
    )
    quality_overgenerate: float = Field(
        1.5, ge=1.0, le=10.0, description="fakes planned per wanted fake when a quality check rejects"
    )
    bias_gate: BiasGate = Field(default_factory=BiasGate)

    @model_validator(mode="wrap")
    @classmethod
    def _whole_numbers(cls, data: Any, handler: ValidatorFunctionWrapHandler) -> Spec:
        """Integers must be written as integers (`count: true` is not 1) and counts stay under MAX_COUNT.

        Many integer fields are declared by the components (generators, sources, the image policy)
        in lax mode, which turns `true`, `1.0` or "12" into an int; the validated spec is compared
        with the raw mapping here, so every integer field of the spec is strict.
        """
        try:
            spec = handler(data)
        except TypeError as err:  # a component's before-validator met a value of an unexpected type
            raise ValueError(
                f"a value has the wrong type ({err}); check that names and models are plain strings"
            ) from None
        errors = _coerced_ints(spec, data, ())
        for section in ("generate", "manipulate"):
            for index, stage in enumerate(getattr(spec, section)):
                if stage.count > MAX_COUNT:
                    errors.append(
                        InitErrorDetails(
                            type=PydanticCustomError(
                                "count_cap",
                                "Input should be less than or equal to {cap} (the most one entry makes; "
                                "split larger runs over several entries)",
                                {"cap": MAX_COUNT},
                            ),
                            loc=(section, index, "count"),
                            input=stage.count,
                        )
                    )
        if errors:
            raise ValidationError.from_exception_data(cls.__name__, errors)
        return spec

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
        metrics = [check.metric for check in self.quality]
        if len(metrics) != len(set(metrics)):
            raise ValueError(f"quality checks must name each metric once; got {metrics}")
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
    def quality_rejects(self) -> bool:
        """Whether a quality check rejects fakes: then generators are over-planned by `quality_overgenerate`."""
        return any(check.action == "reject" for check in self.quality)

    @property
    def stages(self) -> list[Any]:
        """Every generate and manipulate entry, in spec order."""
        return [*self.generate, *self.manipulate]

    def canonical_json(self) -> str:
        """Every field, defaults filled, keys sorted: what the spec hash is taken over."""
        return json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))

    def sha256(self) -> str:
        """The spec hash that names this corpus: the sha256 of spec.resolved.yaml's bytes as written."""
        return hashlib.sha256(self.resolved_yaml().encode("utf-8")).hexdigest()

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
    path: Path | None = None
    """The spec file it was read from (None when built in memory)."""

    @property
    def source(self) -> str:
        """How errors name this spec: its file, else its name."""
        return str(self.path) if self.path is not None else self.spec.name


def _yaml_kind(value: object) -> str:
    """A raw YAML value as an error message names it."""
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, float):
        return f"the decimal {value!r}"
    if isinstance(value, str):
        return f"the string {value!r}"
    return f"a {type(value).__name__}"


def _coerced_ints(model: BaseModel, raw: Any, loc: tuple[str | int, ...]) -> list[InitErrorDetails]:
    """Every int field of `model` (recursively) whose raw value was not written as an integer."""
    if not isinstance(raw, dict):
        return []
    errors: list[InitErrorDetails] = []

    def check(value: Any, given: Any, where: tuple[str | int, ...]) -> None:
        if isinstance(value, BaseModel):
            errors.extend(_coerced_ints(value, given, where))
        elif type(value) is int and type(given) is not int:
            errors.append(
                InitErrorDetails(
                    type=PydanticCustomError(
                        "int_strict",
                        "Input should be a valid integer, got {kind}",
                        {"kind": _yaml_kind(given)},
                    ),
                    loc=where,
                    input=given,
                )
            )
        elif isinstance(value, list | tuple) and isinstance(given, list | tuple) and len(value) == len(given):
            for index, (item, given_item) in enumerate(zip(value, given, strict=True)):
                check(item, given_item, (*where, index))
        elif isinstance(value, dict) and isinstance(given, dict):
            for key, item in value.items():
                if key in given:
                    check(item, given[key], (*where, key))

    for name in type(model).model_fields:
        if name in raw:
            check(getattr(model, name), raw[name], (*loc, name))
    return errors


def _union_tags() -> set[str]:
    from forgeset.generators.masks import mask_generators
    from forgeset.perturbations.ops import perturb_ops

    registries = (real_sources, generators, manipulators, prompt_sources, mask_generators, perturb_ops)
    return {name for registry in registries for name in registry.names()}


_UNION_TAGS = _union_tags()
_PLAIN_KEY = re.compile(r"[A-Za-z0-9_-]+")
_RANGE_ERRORS = {"greater_than", "greater_than_equal", "less_than", "less_than_equal", "multiple_of"}
_NO_DATA: Any = object()
"""No raw data to walk along an error location (not given, or the location left it)."""


def _field_path(loc: tuple[Any, ...], data: Any = _NO_DATA) -> str:
    """pydantic's error location as `generate[0].count` (union tags dropped).

    pydantic inserts the discriminator tag after a tagged union's location (`prompts.templates.
    templates` for `prompts: {type: templates, templates: ...}`). Walking the raw data along the
    location tells the tag (the `type` value of the mapping reached) from a field of the same
    name. Where there is no data to walk, every part that is a registered tag is dropped.
    """
    path = ""
    node, tag_dropped = data, False
    for part in loc:
        if node is _NO_DATA:
            if isinstance(part, str) and part in _UNION_TAGS:
                continue
        elif isinstance(node, dict) and not tag_dropped and part in _UNION_TAGS and node.get("type") == part:
            tag_dropped = True
            continue
        if isinstance(part, str) and _PLAIN_KEY.fullmatch(part):
            path += f".{part}" if path else part
        else:  # a list index, or a key that would not read as one (spaces, dots, newlines)
            path += f"[{part!r}]"
        node, tag_dropped = _child(node, part), False
    return path


def _child(node: Any, part: str | int) -> Any:
    """`node[part]` of raw YAML data, or _NO_DATA where there is none."""
    if isinstance(node, dict) and part in node:
        return node[part]
    if isinstance(node, list | tuple) and isinstance(part, int) and 0 <= part < len(node):
        return node[part]
    return _NO_DATA


def _depth_exceeds(data: Any, limit: int) -> bool:
    """Whether mappings and lists nest deeper than `limit` (or refer to themselves), without recursion."""
    level: dict[int, Any] = {id(data): data}
    for _ in range(limit + 1):
        children: dict[int, Any] = {}
        for node in level.values():
            values = node.values() if isinstance(node, dict) else node if isinstance(node, list | tuple) else ()
            for child in values:
                if isinstance(child, dict | list | tuple):
                    children[id(child)] = child
        if not children:
            return False
        level = children
    return True


def parse_spec(data: Any, source: str = "<spec>") -> Spec:
    """Validate already-parsed YAML; raise SpecError naming each bad field."""
    if not isinstance(data, dict):
        raise SpecError(source, [("", "the spec must be a YAML mapping")])
    if _depth_exceeds(data, MAX_DEPTH):
        raise SpecError(source, [("", f"the spec nests more than {MAX_DEPTH} levels deep (or refers to itself)")])
    try:
        return Spec.model_validate(data)
    except ValidationError as err:
        problems = []
        for error in err.errors(include_url=False):
            message = " ".join(error["msg"].removeprefix("Value error, ").split())
            if error["type"] == "extra_forbidden":
                message = "unknown field (not allowed here)"
            elif error["type"] in _RANGE_ERRORS and isinstance(error.get("input"), bool):
                # lax mode read `true` as 1 before the range check: say what is really wrong
                bounds = (error.get("ctx") or {}).values()
                number = "integer" if all(type(bound) is int for bound in bounds) else "number"
                message = f"Input should be a valid {number}, got {_yaml_kind(error['input'])}"
            problems.append((_field_path(error["loc"], data), message))
        raise SpecError(source, problems) from None
    except RecursionError:
        raise SpecError(source, [("", "the spec nests too deeply to validate")]) from None


def _yaml_message(err: yaml.YAMLError) -> str:
    """A YAML error on one line: where, what, and the construct it happened in (all of PyYAML's text)."""
    if not isinstance(err, yaml.MarkedYAMLError) or err.problem is None:
        return " ".join(str(err).split())
    where = f"line {err.problem_mark.line + 1}, column {err.problem_mark.column + 1}: " if err.problem_mark else ""
    message = f"{where}{err.problem}"
    if err.context:
        mark = err.context_mark
        started = f" that starts at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        message += f" ({err.context}{started})"
    if err.note:
        message += f"; {err.note}"
    return " ".join(message.split())


def load_spec(path: Path) -> LoadedSpec:
    """Read and validate a YAML spec file; relative paths inside it are relative to its folder."""
    source = str(path)
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_SPEC_BYTES + 1)
    except OSError as err:
        raise SpecError(source, [("", f"cannot read the spec file: {err.strerror or err}")]) from None
    if len(raw) > MAX_SPEC_BYTES:
        raise SpecError(
            source, [("", f"the spec file is larger than {MAX_SPEC_BYTES // 2**20} MiB; a spec is short YAML")]
        )
    if b"\0" in raw:
        raise SpecError(source, [("", "the spec file is not UTF-8 text (it holds NUL bytes: a binary file?)")])
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise SpecError(
            source, [("", f"the spec file is not UTF-8 text (invalid byte at offset {err.start})")]
        ) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise SpecError(source, [("", f"not valid YAML: {_yaml_message(err)}")]) from None
    except RecursionError:
        raise SpecError(source, [("", "not valid YAML: it nests too deeply")]) from None
    except (ValueError, OverflowError) as err:  # a scalar PyYAML's constructors refuse (huge int, bad date)
        raise SpecError(source, [("", f"not valid YAML: {' '.join(str(err).split())}")]) from None
    return LoadedSpec(parse_spec(data, source), path.resolve().parent, path)
