"""Spec -> deterministic jobs -> shards.

Keys, seeds, split assignment and shard membership are pure functions of the spec: the same spec
plans the same shards whatever the worker count, the order of execution or an interruption.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path

from forgeset.builders.prompts import prompt_sources
from forgeset.builders.prompts.base import PromptItem
from forgeset.builders.sources import RealItem, RealSource, real_sources
from forgeset.builders.spec import Spec, SpecError
from forgeset.core.seeds import sample_seed, unit_draw
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
    parent_key: str | None = None
    strength: float | None = None
    perturb: tuple[str, ...] = ()
    perturb_seeds: tuple[int, ...] = ()
    perturb_child: bool = False


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


@dataclass
class Plan:
    """Everything a build executes: shard refs in plan order, counts, and jobs on demand."""

    spec: Spec
    base_dir: Path
    shards: list[ShardRef]
    counts: dict[str, int] = field(default_factory=dict)
    """Planned samples per split."""
    stage_counts: dict[str, int] = field(default_factory=dict)
    """Planned model jobs per generator/manipulation name (perturbation children excluded)."""
    _jobs: dict[tuple[str, int], tuple[Job, ...]] = field(default_factory=dict, repr=False)

    @property
    def total_jobs(self) -> int:
        """Number of planned samples (rejected inputs included)."""
        return sum(ref.count for ref in self.shards)

    def shard(self, ref: ShardRef) -> ShardPlan:
        """The jobs of one shard, deterministic, computed on demand."""
        return ShardPlan(ref.split, ref.index, self._jobs[(ref.split, ref.index)])

    def shard_plans(self) -> list[ShardPlan]:
        """Deprecated: every shard materialized (only while build/executors move to refs)."""
        return [self.shard(ref) for ref in self.shards]


def make_source(params: object, base_dir: Path) -> RealSource:
    """Instantiate the registered real source for its params."""
    return real_sources.get(params.type)(params, base_dir)  # type: ignore[attr-defined]


def make_stage(params: GeneratorParams, base_dir: Path, image_size: int) -> Stage:
    """Instantiate the registered generator or manipulation for its params (no model is loaded here)."""
    return stage_class(params)(params, base_dir, image_size)


def _assign_split(spec: Spec, group: str) -> str:
    draw = unit_draw(spec.seed, "split", group)
    cumulative = 0.0
    fractions = spec.splits.fractions()
    for name, fraction in fractions:
        cumulative += fraction
        if draw < cumulative:
            return name
    return next(name for name, fraction in reversed(fractions) if fraction > 0)


def _real_jobs(spec: Spec, base_dir: Path) -> tuple[list[Job], dict[str, list[tuple[str, str | None]]]]:
    jobs: list[Job] = []
    captions: dict[str, list[tuple[str, str | None]]] = {}
    for index, params in enumerate(spec.real):
        name = params.source_name
        try:
            items = make_source(params, base_dir).items()
        except (OSError, ValueError) as err:  # unreachable or unreadable (offline Hub, a vanished folder)
            raise SpecError(
                "<spec>", [(f"real[{index}]", f"cannot list {name}: {type(err).__name__}: {err}")]
            ) from None
        keyed = [(f"{name}-{index:08d}", item) for index, item in enumerate(items)]
        captions[name] = [(key, item.caption) for key, item in keyed]
        for key, item in keyed:
            jobs.append(
                Job(
                    key=key,
                    label="real",
                    kind="real",
                    group=key,
                    split=_assign_split(spec, key),
                    source=name,
                    item=item,
                )
            )
    return jobs, captions


def _prompt_texts(spec: Spec, params: GeneratorParams, base_dir: Path, captions: dict) -> list:
    prompt_params = params.prompts or spec.prompts
    if prompt_params is None:
        return []
    return prompt_sources.get(prompt_params.type)(prompt_params, base_dir).prompts(captions)


def _generated_jobs(spec: Spec, base_dir: Path, captions: dict) -> list[Job]:
    jobs: list[Job] = []
    for params in spec.generate:
        name = params.generator_name
        stage = stage_class(params)
        kind = stage.kind
        own = stage.own_prompts(params) if issubclass(stage, Generator) else None
        prompts = [PromptItem(text) for text in own] if own else _prompt_texts(spec, params, base_dir, captions)
        for index in range(params.count):
            key = f"{name}-{index:08d}"
            prompt = prompts[index % len(prompts)]
            # A caption-paired fake shares its real's lineage group: same content, same split.
            group = prompt.pair_key or key
            jobs.append(
                Job(
                    key=key,
                    label="fake",
                    kind=kind,
                    group=group,
                    split=_assign_split(spec, group),
                    seed=sample_seed(spec.seed, key),
                    generator=name,
                    prompt=prompt.text,
                )
            )
    return jobs


def _manipulated_jobs(spec: Spec, base_dir: Path, reals: list[Job], captions: dict) -> list[Job]:
    """Children of real parents: parents picked by a seeded draw, one child per parent (and strength)."""
    jobs: list[Job] = []
    for index, params in enumerate(spec.manipulate):
        name = params.generator_name
        eligible = [job for job in reals if params.sources is None or job.source in params.sources]
        if params.count > len(eligible):
            raise SpecError(
                "<spec>",
                [
                    (
                        f"manipulate[{index}].count",
                        f"asks for {params.count} parents, the real sources list {len(eligible)}",
                    )
                ],
            )
        picked = sorted(eligible, key=lambda job: unit_draw(spec.seed, "parent", name, job.key))[: params.count]
        prompts = _prompt_texts(spec, params, base_dir, captions)
        stage = stage_class(params)
        strengths = stage.strengths(params)
        child = 0
        for parent in sorted(picked, key=lambda job: job.key):
            for strength in strengths:
                key = f"{name}-{child:08d}"
                caption = parent.item.caption if parent.item else None
                prompt = caption or (prompts[child % len(prompts)].text if prompts else "")
                jobs.append(
                    Job(
                        key=key,
                        label="fake",
                        kind=stage.kind,
                        group=parent.group,
                        split=parent.split,
                        seed=sample_seed(spec.seed, key),
                        source=parent.source,
                        item=parent.item,
                        generator=name,
                        prompt=prompt,
                        parent_key=parent.key,
                        strength=strength,
                    )
                )
                child += 1
    return jobs


def _perturbed_jobs(spec: Spec, base: list[Job]) -> list[Job]:
    """Apply each perturb stage to the base samples: mark them (replace) or add children (new)."""
    jobs = list(base)
    for stage in spec.perturb:
        name = stage.stage_name
        children = []
        for position, job in enumerate(jobs):
            if job.perturb_child or (stage.target != "both" and job.label != stage.target):
                continue
            if unit_draw(spec.seed, "perturb", name, job.key) >= stage.fraction:
                continue
            if stage.mode == "replace":
                jobs[position] = replace(job, perturb=(*job.perturb, name))
            else:
                children.append(
                    replace(job, key=f"{job.key}-{name}", parent_key=job.key, perturb=(name,), perturb_child=True)
                )
        jobs.extend(children)
    return jobs


def _attacked_jobs(spec: Spec, jobs: list[Job]) -> list[Job]:
    """Adversarial children of the clean fakes (never of degraded copies)."""
    children = []
    for stage in spec.adversarial:
        name = stage.stage_name
        for job in jobs:
            if (
                job.label == "fake"
                and not job.perturb_child
                and unit_draw(spec.seed, "attack", name, job.key) < stage.fraction
            ):
                children.append(
                    replace(job, key=f"{job.key}-{name}", parent_key=job.key, perturb=(name,), perturb_child=True)
                )
    return jobs + children


def _hold_out(spec: Spec, jobs: list[Job]) -> list[Job]:
    """Move every lineage group that holds a held-out generator's sample to the OOD split."""
    held = set(spec.splits.holdout_generators)
    groups = {job.group for job in jobs if job.generator in held}
    return [replace(job, split=layout.HOLDOUT_SPLIT) if job.group in groups else job for job in jobs]


def _seed_perturbations(spec: Spec, jobs: list[Job]) -> list[Job]:
    """Draw each perturbation's and attack's seed from the sample's final key and the stage name."""
    return [
        replace(job, perturb_seeds=tuple(sample_seed(spec.seed, f"{job.key}:{name}") for name in job.perturb))
        if job.perturb
        else job
        for job in jobs
    ]


def plan_jobs(spec: Spec, base_dir: Path) -> list[Job]:
    """Every sample of the corpus as a job (real inputs listed, fakes given seeds and prompts)."""
    reals, captions = _real_jobs(spec, base_dir)
    jobs = reals + _generated_jobs(spec, base_dir, captions) + _manipulated_jobs(spec, base_dir, reals, captions)
    return _hold_out(spec, _seed_perturbations(spec, _attacked_jobs(spec, _perturbed_jobs(spec, jobs))))


def plan_build(spec: Spec, base_dir: Path, state_dir: Path | None = None) -> Plan:
    """Group jobs into shards per split: whole lineage groups in a seeded order, so a shard holds
    each sample's parent (derived samples are made from it) and shards mix classes."""
    jobs = plan_jobs(spec, base_dir)
    shards: list[ShardPlan] = []
    counts: dict[str, int] = {}
    size = spec.shards.size
    for split in layout.ALL_SPLITS:
        groups: dict[str, list[Job]] = {}
        for job in jobs:
            if job.split == split:
                groups.setdefault(job.group, []).append(job)
        counts[split] = sum(len(members) for members in groups.values())
        chunks: list[list[Job]] = [[]]
        for group in sorted(groups, key=lambda g: unit_draw(spec.seed, "order", g)):
            if len(chunks[-1]) >= size:
                chunks.append([])
            chunks[-1].extend(groups[group])
        shards.extend(
            ShardPlan(split, index, tuple(sorted(chunk, key=lambda job: job.key)))
            for index, chunk in enumerate(chunks)
            if chunk
        )
    stage_counts = Counter(job.generator for job in jobs if job.generator and not job.perturb_child)
    return Plan(
        spec=spec,
        base_dir=base_dir,
        shards=[ShardRef(shard.split, shard.index, len(shard.jobs)) for shard in shards],
        counts=counts,
        stage_counts={params.generator_name: stage_counts.get(params.generator_name, 0) for params in spec.stages},
        _jobs={(shard.split, shard.index): shard.jobs for shard in shards},
    )
