"""Spec -> deterministic jobs -> shards.

Keys, seeds, split assignment and shard membership are pure functions of the spec: the same spec
plans the same shards whatever the worker count, the order of execution or an interruption.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from forgeset.builders.prompts import prompt_sources
from forgeset.builders.sources import RealItem, RealSource, real_sources
from forgeset.builders.spec import Spec
from forgeset.generators import Generator, GeneratorParams, generators


def unit_draw(*parts: object) -> float:
    """A uniform number in [0, 1) that depends only on `parts`."""
    digest = hashlib.sha256(":".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def sample_seed(spec_seed: int, key: str) -> int:
    """A sample's own 63-bit seed, from the spec seed and its key.

    Not from the whole spec hash: changing the output format or shard size must not change what
    a generator draws, so that corpora differing only in policy hold the same content.
    """
    digest = hashlib.sha256(f"{spec_seed}:seed:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


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


@dataclass(frozen=True)
class ShardPlan:
    """The jobs of one shard, in key order (tar member order)."""

    split: str
    index: int
    jobs: tuple[Job, ...]

    @property
    def path(self) -> str:
        """The shard's path inside OUT, e.g. train/00003.tar."""
        return f"{self.split}/{self.index:05d}.tar"

    @property
    def marker_name(self) -> str:
        """The stem of its rows, rejects and done-marker files under OUT/.forgeset/shards."""
        return f"{self.split}-{self.index:05d}"


@dataclass
class Plan:
    """Everything a build executes."""

    spec: Spec
    base_dir: Path
    shards: list[ShardPlan]
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def total_jobs(self) -> int:
        """Number of planned samples (rejected inputs included)."""
        return sum(len(shard.jobs) for shard in self.shards)


def make_source(params: object, base_dir: Path) -> RealSource:
    """Instantiate the registered real source for its params."""
    return real_sources.get(params.type)(params, base_dir)  # type: ignore[attr-defined]


def make_generator(params: GeneratorParams, base_dir: Path, image_size: int) -> Generator:
    """Instantiate the registered generator for its params (no model is loaded here)."""
    return generators.get(params.type)(params, base_dir, image_size)


def _assign_split(spec: Spec, group: str) -> str:
    draw = unit_draw(spec.seed, "split", group)
    cumulative = 0.0
    fractions = spec.splits.fractions()
    for name, fraction in fractions:
        cumulative += fraction
        if draw < cumulative:
            return name
    return next(name for name, fraction in reversed(fractions) if fraction > 0)


def plan_jobs(spec: Spec, base_dir: Path) -> list[Job]:
    """Every sample of the corpus as a job (real inputs listed, fakes given seeds and prompts)."""
    jobs: list[Job] = []
    captions: dict[str, list[tuple[str, str | None]]] = {}
    for params in spec.real:
        name = params.source_name
        items = make_source(params, base_dir).items()
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
    for params in spec.generate:
        name = params.generator_name
        prompt_params = params.prompts or spec.prompts
        prompts = prompt_sources.get(prompt_params.type)(prompt_params, base_dir).prompts(captions)
        for index in range(params.count):
            key = f"{name}-{index:08d}"
            prompt = prompts[index % len(prompts)]
            # A caption-paired fake shares its real's lineage group: same content, same split.
            group = prompt.pair_key or key
            jobs.append(
                Job(
                    key=key,
                    label="fake",
                    kind="text2image",
                    group=group,
                    split=_assign_split(spec, group),
                    seed=sample_seed(spec.seed, key),
                    generator=name,
                    prompt=prompt.text,
                )
            )
    return jobs


def plan_build(spec: Spec, base_dir: Path) -> Plan:
    """Group jobs into shards: per split, a seeded shuffle (so shards mix classes), then chunks."""
    jobs = plan_jobs(spec, base_dir)
    shards: list[ShardPlan] = []
    counts: dict[str, int] = {}
    for split in ("train", "val", "test"):
        members = sorted(
            (job for job in jobs if job.split == split), key=lambda job: unit_draw(spec.seed, "order", job.key)
        )
        counts[split] = len(members)
        size = spec.shards.size
        for index, start in enumerate(range(0, len(members), size)):
            chunk = sorted(members[start : start + size], key=lambda job: job.key)
            shards.append(ShardPlan(split=split, index=index, jobs=tuple(chunk)))
    return Plan(spec=spec, base_dir=base_dir, shards=shards, counts=counts)
