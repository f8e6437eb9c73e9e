"""Spec -> a compact, deterministic plan -> the jobs of one shard, on demand.

The plan holds a few small-integer arrays over the base units (listed reals, generated fakes,
manipulated children: unit u is index u - first of its stage): the lineage-group roots of each
shard, and the units that join another's group (caption-paired fakes, manipulations) with their
root. No Python object exists per sample until a shard is materialized; then
its keys, seeds, prompts, real items and perturbation/attack children are computed. Every draw is
a pure function of the spec seed, a purpose, a stage name and an index within the stage, so the
same spec plans the same shards whatever the worker count, the order of execution or an
interruption.

Splits are stratified: the lineage groups of each stratum (the stage of the group's root: a real
source or an unpaired generator) are ordered by size and a seeded draw and dealt to the splits
so that every split's class shares follow the corpus within one group. Groups of a split are
then ordered by another draw and cut into at least `shards.min_per_split` contiguous shards of
nearly equal size; whole groups stay in one shard, so a shard holds each derived sample's parent.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from forgeset.builders.prompts import prompt_sources
from forgeset.builders.prompts.base import PromptItem
from forgeset.builders.sources import RealItem, RealSource, real_sources
from forgeset.builders.sources.index import SourceIndex
from forgeset.builders.spec import Spec, SpecError
from forgeset.core.seeds import sample_seed
from forgeset.generators import GeneratorParams
from forgeset.generators.base import Generator, Stage, stage_class
from forgeset.manifests import layout


@dataclass(frozen=True)
class Job:
    """One sample to produce: identity, label, lineage group and what to make it from."""

    key: str
    label: str
    kind: str
    group: str
    split: str
    seed: int | None = None
    source: str | None = None
    item: RealItem | None = None
    generator: str | None = None
    prompt: str | None = None
    prompt_base: str | None = None  # the prompt `prompt` was made from (an expanded prompt's base)
    parent_key: str | None = None
    strength: float | None = None
    perturb: tuple[str, ...] = ()
    perturb_seeds: tuple[int, ...] = ()
    perturb_child: bool = False
    spare: bool = False  # planned past the generator's count (quality over-generation): kept only to fill in


@dataclass(frozen=True)
class ShardPlan:
    """The jobs of one shard, in key order (tar member order)."""

    split: str
    index: int
    jobs: tuple[Job, ...]

    @property
    def path(self) -> str:
        """The shard's path inside OUT, e.g. train/00003.tar."""
        return layout.shard_path(self.split, self.index)


@dataclass(frozen=True)
class ShardRef:
    """A shard without its jobs: cheap, so thousands fit anywhere; `Plan.shard` materializes it."""

    split: str
    index: int
    count: int
    """Planned jobs in the shard (samples, rejected inputs included)."""

    @property
    def path(self) -> str:
        """The shard's path inside OUT, e.g. train/00003.tar."""
        return layout.shard_path(self.split, self.index)


def make_source(params: object, base_dir: Path) -> RealSource:
    """Instantiate the registered real source for its params."""
    return real_sources.get(params.type)(params, base_dir)  # type: ignore[attr-defined]


def make_stage(params: GeneratorParams, base_dir: Path, image_size: int) -> Stage:
    """Instantiate the registered generator or manipulation for its params (no model is loaded here)."""
    return stage_class(params)(params, base_dir, image_size)


# Draws: numpy's vectorized splitmix64 finalizer over (a sha256 of seed, purpose and stage) and
# the index, because one Python sha256 per sample and purpose would take minutes at 10M samples.
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)


def _mix(values: np.ndarray) -> np.ndarray:
    values = (values ^ (values >> np.uint64(30))) * _MIX1
    values = (values ^ (values >> np.uint64(27))) * _MIX2
    return values ^ (values >> np.uint64(31))


def raw_draws(seed: int, purpose: str, stage: str, indices: np.ndarray) -> np.ndarray:
    """A uniform uint64 per index, a pure function of (seed, purpose, stage name, index)."""
    base = np.uint64(int.from_bytes(hashlib.sha256(f"{seed}:{purpose}:{stage}".encode()).digest()[:8], "big"))
    with np.errstate(over="ignore"):
        return _mix(_mix((np.asarray(indices).astype(np.uint64) * _GOLDEN) ^ base))


def unit_draws(seed: int, purpose: str, stage: str, indices: np.ndarray) -> np.ndarray:
    """Uniform floats in [0, 1), one per index (see `raw_draws`)."""
    return (raw_draws(seed, purpose, stage, indices) >> np.uint64(11)).astype(np.float64) * 2.0**-53


@dataclass(frozen=True)
class _UnitStage:
    """A contiguous run of base units: one real source, generate entry or manipulate entry."""

    name: str
    role: str  # "real", "generate" or "manipulate"
    label: str
    kind: str
    first: int
    count: int
    params: Any


@dataclass
class _CompactPlan:
    """The compact plan: stages, the group roots of each shard, the other members of each group."""

    stages: list[_UnitStage]
    starts: np.ndarray
    shard_roots: np.ndarray
    """Group roots (units), shard after shard in plan order; shard n holds roots[offsets[n]:offsets[n+1]]."""
    offsets: np.ndarray
    member_root: np.ndarray
    """Roots of the units that are no root (caption-paired fakes, manipulations), sorted."""
    member_unit: np.ndarray
    """Those units, in the order of `member_root`."""
    sources: dict[str, SourceIndex]
    prompts: dict[str, list[PromptItem]]
    position: dict[tuple[str, int], int]

    def stage_of(self, units: np.ndarray) -> np.ndarray:
        """The stage number of each unit."""
        return np.searchsorted(self.starts, units, side="right") - 1

    def draws(self, seed: int, purpose: str, units: np.ndarray) -> np.ndarray:
        """`unit_draws` of each unit under its own stage name and index."""
        out = np.empty(len(units), np.float64)
        stage_of = self.stage_of(units)
        for number in np.unique(stage_of):
            mask = stage_of == number
            stage = self.stages[number]
            out[mask] = unit_draws(seed, purpose, stage.name, units[mask] - stage.first)
        return out

    def key(self, unit: int) -> str:
        """The sample key of a base unit: NAME-%08d."""
        stage = self.stages[int(self.stage_of(np.array([unit]))[0])]
        return f"{stage.name}-{unit - stage.first:08d}"

    def units(self, number: int) -> tuple[np.ndarray, dict[int, int]]:
        """Shard `number`'s units in unit order, and the root of each unit that is no root."""
        roots = self.shard_roots[self.offsets[number] : self.offsets[number + 1]].astype(np.int64)
        low = np.searchsorted(self.member_root, roots, side="left")
        high = np.searchsorted(self.member_root, roots, side="right")
        root_of: dict[int, int] = {}
        for root, start, stop in zip(roots.tolist(), low.tolist(), high.tolist(), strict=True):
            root_of.update(dict.fromkeys(self.member_unit[start:stop].tolist(), root))
        units = np.concatenate([roots, np.array(sorted(root_of), np.int64)])
        return np.sort(units), root_of


@dataclass
class Plan:
    """Everything a build executes: shard refs in plan order, counts, and jobs on demand."""

    spec: Spec
    base_dir: Path
    shards: list[ShardRef]
    counts: dict[str, int] = field(default_factory=dict)
    """Planned samples per split (perturbation and attack children included)."""
    stage_counts: dict[str, int] = field(default_factory=dict)
    """Planned model jobs per generator/manipulation name (perturbation children excluded)."""
    split_stage_counts: dict[str, dict[str, int]] = field(default_factory=dict)
    """Per split: base samples per real source, generator and manipulation (children excluded)."""
    spares: dict[str, int] = field(default_factory=dict)
    """Per generator: fakes planned beyond its count for a rejecting quality check (in `stage_counts`)."""
    _compact: _CompactPlan | None = field(default=None, repr=False)

    @property
    def total_jobs(self) -> int:
        """Number of planned samples (rejected inputs included)."""
        return sum(ref.count for ref in self.shards)

    def shard(self, ref: ShardRef) -> ShardPlan:
        """The jobs of one shard, in key order: deterministic, computed on demand."""
        assert self._compact is not None
        return ShardPlan(ref.split, ref.index, tuple(_materialize(self.spec, self._compact, ref)))


def _prompt_texts(
    spec: Spec,
    params: GeneratorParams,
    base_dir: Path,
    captions: dict,
    state_dir: Path | None,
    made: dict,
    counts_only: bool = False,
) -> list[PromptItem]:
    """The stage's prompts; a prompt source shared by several stages runs once (`made`, by its params)."""
    prompt_params = params.prompts or spec.prompts
    if prompt_params is None:
        return []
    made_key = prompt_params.model_dump_json()
    if made_key not in made:
        source = prompt_sources.get(prompt_params.type)(prompt_params, base_dir, state_dir, spec.seed)
        source.counts_only = counts_only
        made[made_key] = source.prompts(captions)
    return made[made_key]


def _list_sources(spec: Spec, base_dir: Path, state_dir: Path | None) -> dict[str, SourceIndex]:
    """Each real source's index: listed now (written under `state_dir`), or reused from there."""
    indexes = {}
    for position, params in enumerate(spec.real):
        name = params.source_name
        path = layout.source_index(state_dir, name) if state_dir is not None else None
        try:
            indexes[name] = SourceIndex.open(make_source(params, base_dir), path)
        except (OSError, ValueError) as err:  # unreachable or unreadable (offline Hub, a vanished folder)
            raise SpecError(
                "<spec>", [(f"real[{position}]", f"cannot list {name}: {type(err).__name__}: {err}")]
            ) from None
    return indexes


def _stages(spec: Spec, sources: dict[str, SourceIndex]) -> list[_UnitStage]:
    stages: list[_UnitStage] = []
    first = 0
    for params in spec.real:
        name = params.source_name
        stages.append(_UnitStage(name, "real", "real", "real", first, len(sources[name]), params))
        first += stages[-1].count
    for params in spec.generate:
        count = planned_count(spec, params.count)
        stages.append(
            _UnitStage(params.generator_name, "generate", "fake", stage_class(params).kind, first, count, params)
        )
        first += count
    for params in spec.manipulate:
        stage = stage_class(params)
        count = params.count * len(stage.strengths(params))
        stages.append(_UnitStage(params.generator_name, "manipulate", "fake", stage.kind, first, count, params))
        first += count
    return stages


def planned_count(spec: Spec, count: int) -> int:
    """Fakes planned for a generate entry of `count`: over-generated when a quality check rejects.

    The spare units (index count and up) get keys and seeds like the others; each shard keeps,
    per generator, as many fakes as it holds non-spare units: the first that pass, in unit order.
    """
    return math.ceil(count * spec.quality_overgenerate) if spec.quality_rejects else count


def _captions(spec: Spec, stages: list[_UnitStage], sources: dict[str, SourceIndex]) -> dict:
    """(key, caption) of each real source some prompt source pairs with (only those: they are long)."""
    paired = {
        prompts.paired_source
        for prompts in [spec.prompts, *(params.prompts for params in spec.stages)]
        if prompts is not None and prompts.paired_source is not None
    }
    return {
        stage.name: [(f"{stage.name}-{i:08d}", text) for i, text in enumerate(sources[stage.name].captions())]
        for stage in stages
        if stage.role == "real" and stage.name in paired
    }


def _members(
    spec: Spec,
    base_dir: Path,
    stages: list[_UnitStage],
    captions: dict,
    state_dir: Path | None = None,
    counts_only: bool = False,
) -> tuple[np.ndarray, np.ndarray, dict[str, list[PromptItem]]]:
    """The units that join another's lineage group (caption-paired fakes join their real,
    manipulations their parent) with those roots, in unit order; and each stage's prompts."""
    first_of = {stage.name: stage.first for stage in stages}
    prompts: dict[str, list[PromptItem]] = {}
    made: dict[str, list[PromptItem]] = {}
    units: list[np.ndarray] = []
    roots: list[np.ndarray] = []
    for stage in stages:
        params = stage.params
        if stage.role == "generate":
            cls = stage_class(params)
            own = cls.own_prompts(params) if issubclass(cls, Generator) else None
            items = (
                [PromptItem(text) for text in own]
                if own
                else _prompt_texts(spec, params, base_dir, captions, state_dir, made, counts_only)
            )
            prompts[stage.name] = items
            if items and any(item.pair_key for item in items):
                paired = np.array(
                    [_pair_unit(item.pair_key, first_of) if item.pair_key else -1 for item in items], np.int64
                )
                chosen = paired[np.arange(stage.count) % len(items)]
                joined = np.flatnonzero(chosen >= 0)
                units.append(joined + stage.first)
                roots.append(chosen[joined])
        elif stage.role == "manipulate":
            prompts[stage.name] = _prompt_texts(spec, params, base_dir, captions, state_dir, made, counts_only)
            units.append(np.arange(stage.first, stage.first + stage.count, dtype=np.int64))
            roots.append(np.repeat(_parents(spec, stages, stage), stage.count // params.count))
    if not units:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), prompts
    return np.concatenate(units), np.concatenate(roots), prompts


def _pair_unit(pair_key: str, first_of: dict[str, int]) -> int:
    """The unit of a real key NAME-%08d (keys are made by this module, so the split is safe)."""
    name, _, index = pair_key.rpartition("-")
    return first_of[name] + int(index)


def _parents(spec: Spec, stages: list[_UnitStage], stage: _UnitStage) -> np.ndarray:
    """The manipulation's parents, in unit order: the `count` eligible reals with the lowest seeded draws."""
    params = stage.params
    eligible = [s for s in stages if s.role == "real" and (params.sources is None or s.name in params.sources)]
    available = sum(s.count for s in eligible)
    if params.count > available:
        position = spec.manipulate.index(params)
        raise SpecError(
            "<spec>",
            [(f"manipulate[{position}].count", f"asks for {params.count} parents, the real sources list {available}")],
        )
    units = np.concatenate([np.arange(s.first, s.first + s.count, dtype=np.int64) for s in eligible])
    draws = np.concatenate([raw_draws(spec.seed, f"parent:{stage.name}", s.name, np.arange(s.count)) for s in eligible])
    picked = np.argsort(draws, kind="stable")[: params.count]
    return np.sort(units[picked])


def _children(spec: Spec, stages: list[_UnitStage], total: int) -> np.ndarray:
    """How many perturbation (mode new) and attack children each base unit has (fewer than 255:
    one per stage at most, and stage names are unique)."""
    children = np.zeros(total, np.uint8)
    for stage in stages:
        span = slice(stage.first, stage.first + stage.count)
        indices = np.arange(stage.count)
        for perturb in spec.perturb:
            if perturb.mode == "new" and perturb.target in ("both", stage.label):
                draws = unit_draws(spec.seed, f"perturb:{perturb.stage_name}", stage.name, indices)
                children[span] += draws < perturb.fraction
        if stage.label == "fake":
            for attack in spec.adversarial:
                draws = unit_draws(spec.seed, f"attack:{attack.stage_name}", stage.name, indices)
                children[span] += draws < attack.fraction
    return children


def _dealt(count: int, fractions: list[float]) -> np.ndarray:
    """The split number of each of `count` positions, dealt so that every prefix of m positions
    holds about m x fraction of each split (within one on the usual fractions).

    Webster's divisor sequence: split k's j-th position is due at (j + 1/2) / fraction_k and the
    positions go to the splits in the order they fall due; a merge of sorted due times, so numpy
    sorts it for all positions at once.
    """
    due, splits = [], []
    for number, fraction in enumerate(fractions):
        if fraction > 0:
            steps = np.arange(math.ceil(count * fraction) + 2)
            due.append((steps + 0.5) / fraction)
            splits.append(np.full(len(steps), number, np.int8))
    times, numbers = np.concatenate(due), np.concatenate(splits)
    return numbers[np.argsort(times, kind="stable")[:count]]  # sorted runs: a merge; ties: split order


def _assign_splits(
    spec: Spec,
    stages: list[_UnitStage],
    is_member: np.ndarray,
    member_root: np.ndarray,
    weight: np.ndarray,
    member_weight: np.ndarray,
) -> np.ndarray:
    """Each group root's split number (layout.ALL_SPLITS order); -1 for units that are no root.

    Groups that hold a held-out generator's sample go to the OOD split whole. The others are
    stratified by their root's stage (a real source or an unpaired generator): ordered by their
    fakes, then reals (children included), largest first, then by a seeded draw, and dealt so that
    every prefix follows the split fractions. With sizes decreasing, the reals and the fakes of a
    split then each stay within one group of their share of the stratum.
    """
    total = len(weight)
    split_of = np.full(total, -1, np.int8)
    held = np.zeros(total, bool)
    held_names = set(spec.splits.holdout_generators)
    member_units = np.flatnonzero(is_member)
    for stage in stages:
        if stage.name in held_names:
            span = slice(stage.first, stage.first + stage.count)
            held[span] = ~is_member[span]
            inside = (member_units >= stage.first) & (member_units < stage.first + stage.count)
            held[member_root[inside]] = True
    fractions = [fraction for _, fraction in spec.splits.fractions()]
    holdout = layout.ALL_SPLITS.index(layout.HOLDOUT_SPLIT)
    for stage in stages:
        span = slice(stage.first, stage.first + stage.count)
        roots = np.flatnonzero(~is_member[span] & ~held[span]) + stage.first
        # draws of distinct indices are distinct (every step of raw_draws is a bijection of uint64),
        # so any sort gives the same order: the faster unstable one
        order = np.argsort(raw_draws(spec.seed, "split", stage.name, roots - stage.first))
        reals_first = np.argsort(np.uint8(255) - weight[roots[order]], kind="stable")  # 8-bit: a radix sort
        order = order[reals_first]
        if stage.role == "real":  # only reals have members: the fakes of their group
            fakes = member_weight[roots[order]]
            order = order[np.argsort(fakes.max(initial=0) - fakes, kind="stable")]
        split_of[roots[order]] = _dealt(len(roots), fractions)
        split_of[np.flatnonzero(~is_member[span] & held[span]) + stage.first] = holdout
    return split_of


def _cut(weights: np.ndarray, shards: int) -> np.ndarray:
    """Contiguous cut of groups (in order, with these sample weights) into `shards` non-empty shards
    of nearly equal samples: each group's shard number."""
    groups = len(weights)
    starts = np.cumsum(weights) - weights
    targets = np.arange(shards) * (int(weights.sum()) / shards)
    bounds = np.searchsorted(starts, targets, side="left")
    steps = np.arange(shards)
    bounds = np.maximum.accumulate(bounds - steps) + steps  # strictly increasing: no empty shard
    bounds = np.minimum(bounds, groups - shards + steps)  # enough groups left for the later shards
    return np.searchsorted(bounds, np.arange(groups), side="right") - 1


def _layout_shards(
    spec: Spec, stages: list[_UnitStage], split_of: np.ndarray, group_weight: Any
) -> tuple[list[ShardRef], np.ndarray, np.ndarray]:
    """Shard refs in plan order, the roots of every shard (concatenated) and each shard's offset."""
    refs: list[ShardRef] = []
    shard_roots: list[np.ndarray] = []
    offsets = [0]
    starts = np.array([stage.first for stage in stages], np.int64)
    index_type = np.int32 if len(split_of) < 2**31 else np.int64
    for number, split in enumerate(layout.ALL_SPLITS):
        roots = np.flatnonzero(split_of == number)
        if not len(roots):
            continue
        stage_of = np.searchsorted(starts, roots, side="right") - 1
        draws = np.empty(len(roots), np.uint64)
        for stage_number in np.unique(stage_of):
            low, high = np.searchsorted(stage_of, [stage_number, stage_number + 1])
            stage = stages[stage_number]
            draws[low:high] = raw_draws(spec.seed, "order", stage.name, roots[low:high] - stage.first)
        del stage_of
        ordered = roots[np.argsort(draws, kind="stable")]
        del roots, draws
        weights = group_weight(ordered)
        samples = int(weights.sum())
        wanted = max(math.ceil(samples / spec.shards.size), spec.shards.min_per_split)
        count = min(len(ordered), wanted)
        local = _cut(weights, count)
        sizes = np.bincount(local, weights=weights, minlength=count).astype(np.int64)
        offsets.extend((offsets[-1] + np.cumsum(np.bincount(local, minlength=count))).tolist())
        refs.extend(ShardRef(split, index, int(size)) for index, size in enumerate(sizes))
        shard_roots.append(ordered.astype(index_type))
    roots_all = np.concatenate(shard_roots) if shard_roots else np.zeros(0, index_type)
    return refs, roots_all, np.array(offsets, np.int64)


def plan_build(spec: Spec, base_dir: Path, state_dir: Path | None = None, counts_only: bool = False) -> Plan:
    """Plan the corpus of `spec`: list the real sources once, assign groups to splits and shards.

    `state_dir` (OUT's build state) keeps each source's listing for later shards and resumes; with
    None (plan-only) nothing is written. `counts_only` (plan-only) asks prompt sources for their
    count, not their text, so no model runs (prompt expansion returns its base prompts): the counts,
    splits and shards are the same, the prompts in the jobs are not the ones a build would use.
    """
    sources = _list_sources(spec, base_dir, state_dir)
    stages = _stages(spec, sources)
    total = stages[-1].first + stages[-1].count
    captions = _captions(spec, stages, sources)
    member_unit, member_root, prompts = _members(spec, base_dir, stages, captions, state_dir, counts_only)
    is_member = np.zeros(total, bool)
    is_member[member_unit] = True
    weight = _children(spec, stages, total) + np.uint8(1)
    real_units = sum(stage.count for stage in stages if stage.role == "real")
    # every member is a fake whose root is a real: its group's fakes, per real
    member_weight = np.bincount(member_root, weights=weight[member_unit], minlength=real_units).astype(np.int64)

    def group_weight(roots: np.ndarray) -> np.ndarray:
        sizes = weight[roots].astype(np.int64)
        real = roots < real_units
        sizes[real] += member_weight[roots[real]]
        return sizes

    split_of = _assign_splits(spec, stages, is_member, member_root, weight, member_weight)
    refs, shard_roots, offsets = _layout_shards(spec, stages, split_of, group_weight)

    split_stage_counts: dict[str, dict[str, int]] = {split: {} for split in layout.ALL_SPLITS}
    for stage in stages:
        span = slice(stage.first, stage.first + stage.count)
        low, high = np.searchsorted(member_unit, [stage.first, stage.first + stage.count])
        numbers = np.concatenate([split_of[span][~is_member[span]], split_of[member_root[low:high]]])
        per_split = np.bincount(numbers.astype(np.int64), minlength=len(layout.ALL_SPLITS))
        for number, split in enumerate(layout.ALL_SPLITS):
            split_stage_counts[split][stage.name] = int(per_split[number])
    order = np.argsort(member_root, kind="stable")
    compact = _CompactPlan(
        stages=stages,
        starts=np.array([stage.first for stage in stages], np.int64),
        shard_roots=shard_roots,
        offsets=offsets,
        member_root=member_root[order],
        member_unit=member_unit[order],
        sources=sources,
        prompts=prompts,
        position={(ref.split, ref.index): number for number, ref in enumerate(refs)},
    )
    counts = dict.fromkeys(layout.ALL_SPLITS, 0)
    for ref in refs:
        counts[ref.split] += ref.count
    return Plan(
        spec=spec,
        base_dir=base_dir,
        shards=refs,
        counts=counts,
        stage_counts={stage.name: stage.count for stage in stages if stage.role != "real"},
        split_stage_counts=split_stage_counts,
        spares={
            stage.name: stage.count - stage.params.count
            for stage in stages
            if stage.role == "generate" and stage.count > stage.params.count
        },
        _compact=compact,
    )


def _materialize(spec: Spec, plan: _CompactPlan, ref: ShardRef) -> list[Job]:
    """The jobs of one shard: base units, then perturbation marks and children, attack children."""
    units, root_of = plan.units(plan.position[(ref.split, ref.index)])
    stage_of = plan.stage_of(units)
    items: dict[int, RealItem] = {}
    for stage_number in np.unique(stage_of):
        stage = plan.stages[stage_number]
        if stage.role == "real":
            real_units = units[stage_of == stage_number]
            rows = real_units - stage.first
            items.update(zip(real_units.tolist(), plan.sources[stage.name].items(rows), strict=True))
    jobs: dict[int, Job] = {}
    for unit, stage_number in zip(units.tolist(), stage_of.tolist(), strict=True):
        stage = plan.stages[stage_number]
        index = unit - stage.first
        key = f"{stage.name}-{index:08d}"
        group = plan.key(root_of[unit]) if unit in root_of else key
        if stage.role == "real":
            jobs[unit] = Job(key, "real", "real", key, ref.split, source=stage.name, item=items[unit])
        elif stage.role == "generate":
            prompts = plan.prompts[stage.name]
            prompt = prompts[index % len(prompts)] if prompts else None
            jobs[unit] = Job(
                key,
                "fake",
                stage.kind,
                group,
                ref.split,
                seed=sample_seed(spec.seed, key),
                generator=stage.name,
                prompt=prompt.text if prompt else None,
                prompt_base=prompt.base if prompt else None,
                spare=index >= stage.params.count,
            )
        else:
            parent = jobs[root_of[unit]]  # a real, earlier in unit order
            strengths = stage_class(stage.params).strengths(stage.params)
            prompts = plan.prompts[stage.name]
            caption = parent.item.caption if parent.item else None
            prompt = None if caption or not prompts else prompts[index % len(prompts)]
            jobs[unit] = Job(
                key,
                "fake",
                stage.kind,
                parent.group,
                ref.split,
                seed=sample_seed(spec.seed, key),
                source=parent.source,
                item=parent.item,
                generator=stage.name,
                prompt=caption or (prompt.text if prompt else ""),
                prompt_base=prompt.base if prompt else None,
                parent_key=parent.key,
                strength=strengths[index % len(strengths)],
            )
    base = [jobs[unit] for unit in units.tolist()]
    children: list[Job] = []
    for perturb in spec.perturb:
        name = perturb.stage_name
        picked = plan.draws(spec.seed, f"perturb:{name}", units) < perturb.fraction
        for position, job in enumerate(base):
            if not picked[position] or (perturb.target != "both" and job.label != perturb.target):
                continue
            if perturb.mode == "replace":
                base[position] = replace(job, perturb=(*job.perturb, name))
            else:
                children.append(_child(job, name))
    for attack in spec.adversarial:
        name = attack.stage_name
        picked = plan.draws(spec.seed, f"attack:{name}", units) < attack.fraction
        children.extend(
            _child(job, name) for position, job in enumerate(base) if job.label == "fake" and picked[position]
        )
    every = [_seeded(spec, job) for job in base + children]
    return sorted(every, key=lambda job: job.key)


def _child(job: Job, stage: str) -> Job:
    """A degraded or attacked copy of `job`, made from it by stage `stage`."""
    return replace(job, key=f"{job.key}-{stage}", parent_key=job.key, perturb=(stage,), perturb_child=True)


def _seeded(spec: Spec, job: Job) -> Job:
    """Each perturbation's and attack's seed, drawn from the sample's final key and the stage name."""
    if not job.perturb:
        return job
    return replace(job, perturb_seeds=tuple(sample_seed(spec.seed, f"{job.key}:{name}") for name in job.perturb))


def plan_jobs(spec: Spec, base_dir: Path) -> list[Job]:
    """Every sample of the corpus as a job, shard by shard (small corpora and tests only)."""
    plan = plan_build(spec, base_dir)
    return [job for ref in plan.shards for job in plan.shard(ref).jobs]
