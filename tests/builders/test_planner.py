"""Keys, seeds, splits and shards are pure functions of the spec; shards materialize on demand."""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from forgeset.builders.planner import Job, Plan, ShardPlan, plan_build
from forgeset.builders.spec import SpecError, load_spec, parse_spec
from forgeset.core.seeds import sample_seed
from forgeset.manifests import layout
from tests.conftest import SPECS, tiny_spec


def _shards(plan: Plan) -> list[ShardPlan]:
    return [plan.shard(ref) for ref in plan.shards]


def _jobs(plan: Plan) -> list[Job]:
    return [job for shard in _shards(plan) for job in shard.jobs]


def _plan(**overrides):
    return plan_build(parse_spec(tiny_spec(**overrides)), Path("."))


def _spec_plan(name: str) -> Plan:
    loaded = load_spec(SPECS / f"{name}.yaml")
    return plan_build(loaded.spec, loaded.base_dir)


def test_plan_is_deterministic_and_keys_have_no_dots() -> None:
    first, second = _plan(), _plan()
    assert first.shards == second.shards
    assert _shards(first) == _shards(second)  # every field: seeds, prompts, items, splits
    keys = [job.key for job in _jobs(first)]
    assert len(keys) == len(set(keys)) == 16 + 12
    assert not any("." in key for key in keys)
    assert Counter(job.label for job in _jobs(first)) == {"real": 16, "fake": 12}


def test_counts_per_split_and_shard_are_exact() -> None:
    plan = _plan(shards={"size": 6, "min_per_split": 8})
    # 16 reals and 12 fakes dealt 0.8/0.1/0.1 per stratum: 12/2/2 and 10/1/1.
    assert plan.counts == {"train": 22, "val": 3, "test": 3, "test_ood": 0}
    assert plan.split_stage_counts["train"] == {"bundled": 12, "tiny-sd": 10}
    assert plan.split_stage_counts["val"] == {"bundled": 2, "tiny-sd": 1}
    assert plan.stage_counts == {"tiny-sd": 12}
    # train: 22 samples, shards of 6 -> 4, raised to min_per_split 8; val and test: one sample per shard
    assert Counter(ref.split for ref in plan.shards) == {"train": 8, "val": 3, "test": 3}
    assert [ref.count for ref in plan.shards if ref.split == "train"] == [3, 3, 3, 2, 3, 3, 3, 2]
    assert [(ref.split, ref.index) for ref in plan.shards][:2] == [("train", 0), ("train", 1)]
    for ref, shard in zip(plan.shards, _shards(plan), strict=True):
        assert (shard.split, shard.index, shard.path) == (ref.split, ref.index, ref.path)
        assert len(shard.jobs) == ref.count
    assert plan.total_jobs == 28


def test_shards_hold_one_split_in_key_order_and_respect_the_size() -> None:
    plan = _plan()  # tiny_spec: shards of 6, min_per_split 1
    assert Counter(ref.split for ref in plan.shards) == {"train": 4, "val": 1, "test": 1}
    assert [ref.count for ref in plan.shards] == [6, 5, 6, 5, 3, 3]
    for shard in _shards(plan):
        keys = [job.key for job in shard.jobs]
        assert keys == sorted(keys)
        assert {job.split for job in shard.jobs} == {shard.split}
        assert 0 < len(keys) <= 6
    assert plan.shards[0].path == "train/00000.tar"


def test_seeds_depend_on_spec_seed_and_key_only() -> None:
    plan = _plan()
    fake = next(job for job in _jobs(plan) if job.label == "fake")
    assert fake.seed == sample_seed(7, fake.key)
    assert 0 <= fake.seed < 2**63
    # A policy change (format, shard size) keeps every sample's seed and split.
    other = _plan(image={"size": 32, "format": "jpeg"}, shards={"size": 4})
    jobs = {job.key: job for job in _jobs(other)}
    assert jobs[fake.key].seed == fake.seed
    assert all(jobs[job.key].split == job.split for job in _jobs(plan))


def test_split_fractions_are_followed() -> None:
    spec = tiny_spec(splits={"train": 0.5, "val": 0.0, "test": 0.5})
    spec["generate"][0]["count"] = 400
    plan = plan_build(parse_spec(spec), Path("."))
    assert plan.counts == {"train": 208, "val": 0, "test": 208, "test_ood": 0}
    assert plan.split_stage_counts["test"] == {"bundled": 8, "tiny-sd": 200}


def test_caption_prompts_pair_a_fake_with_its_real(tmp_path: Path) -> None:
    from tests.builders.test_sources import captioned_tars

    tars = captioned_tars(tmp_path)
    spec = tiny_spec(
        real=[{"type": "webdataset", "name": "coco", "urls": [str(tars)], "caption_extension": "txt"}],
        prompts={"type": "captions", "source": "coco"},
    )
    plan = plan_build(parse_spec(spec), tmp_path)
    jobs = {job.key: job for job in _jobs(plan)}
    fake = jobs["tiny-sd-00000001"]
    real = jobs["coco-00000001"]
    assert fake.prompt == "caption number 1"
    assert fake.group == real.key and fake.split == real.split
    assert real.item is not None and real.item.caption == "caption number 1"
    assert real.item.ref.endswith("captioned-000.tar#img001.png")


def _check_lineage(plan: Plan) -> dict[str, tuple[str, str]]:
    """Every group in one shard; every parent in its child's shard. Returns group -> (split, shard)."""
    where: dict[str, tuple[str, str]] = {}
    for shard in _shards(plan):
        keys = {job.key for job in shard.jobs}
        for job in shard.jobs:
            assert where.setdefault(job.group, (shard.split, shard.path)) == (shard.split, shard.path), job.key
            assert job.parent_key is None or job.parent_key in keys, job.key
    return where


@pytest.mark.parametrize("name", ["quickstart", "forensics-mix"])
def test_split_class_shares_match_the_corpus_within_one_group(name: str) -> None:
    plan = _spec_plan(name)
    jobs = _jobs(plan)
    _check_lineage(plan)
    group_sizes = Counter((job.group, job.label) for job in jobs)
    largest = {label: max(n for (_, lab), n in group_sizes.items() if lab == label) for label in ("real", "fake")}
    by_split = Counter((job.split, job.label) for job in jobs if job.split != layout.HOLDOUT_SPLIT)
    fractions = dict(plan.spec.splits.fractions())
    for label in ("real", "fake"):
        total = sum(n for (_, lab), n in by_split.items() if lab == label)
        for split, fraction in fractions.items():
            assert abs(by_split[(split, label)] - fraction * total) <= largest[label], (split, label)
    if name == "quickstart":  # 144 reals, 144 fakes: 0.8/0.1/0.1 of each, exactly
        assert {split: (by_split[(split, "real")], by_split[(split, "fake")]) for split in fractions} == {
            "train": (116, 116),
            "val": (14, 14),
            "test": (14, 14),
        }
        assert Counter(ref.split for ref in plan.shards) == {"train": 8, "val": 8, "test": 8}


def test_forensics_mix_lineage_hold_out_and_perturbations() -> None:
    plan = _spec_plan("forensics-mix")
    jobs = _jobs(plan)
    where = _check_lineage(plan)
    by_key = {job.key: job for job in jobs}
    # hold-out: every tiny-sd-euler sample and nothing else sits in test_ood, whole groups
    ood = {job.key for job in jobs if job.split == layout.HOLDOUT_SPLIT}
    assert ood == {job.key for job in jobs if job.generator == "tiny-sd-euler"}
    assert all(where[job.group][0] == layout.HOLDOUT_SPLIT for job in jobs if job.generator == "tiny-sd-euler")
    # at least min_per_split (8) shards in every split, test_ood's 24 groups included
    assert Counter(ref.split for ref in plan.shards) == {"train": 8, "val": 8, "test": 8, "test_ood": 8}
    # manipulations: count x strengths children of distinct real parents, in the parent's group
    children = Counter(job.generator for job in jobs if job.parent_key and not job.perturb_child)
    assert children == {
        "telea-boxes": 40,
        "ns-brush": 24,
        "tiny-inpaint-background": 16,
        "tiny-vae-roundtrip": 32,
        "tiny-img2img": 16,
    }
    assert plan.stage_counts["tiny-img2img"] == 16
    img2img = [job for job in jobs if job.generator == "tiny-img2img" and not job.perturb_child]
    assert Counter(job.strength for job in img2img) == {0.3: 8, 0.6: 8}
    assert len({job.parent_key for job in img2img}) == 8
    for job in jobs:
        if job.parent_key and not job.perturb_child:
            parent = by_key[job.parent_key]
            assert parent.label == "real" and job.group == parent.key and job.item == parent.item
    # perturbation children: copies keyed KEY-STAGE with seeds from their final key
    degraded = [job for job in jobs if job.perturb_child]
    assert degraded and all(job.key == f"{job.parent_key}-{job.perturb[0]}" for job in degraded)
    assert all(job.perturb_seeds == (sample_seed(1, f"{job.key}:{job.perturb[0]}"),) for job in degraded)
    assert sum(ref.count for ref in plan.shards) == len(jobs) == 475


def test_replace_and_attack_children_follow_the_draws() -> None:
    spec = tiny_spec(
        perturb=[{"name": "jpg", "ops": [{"type": "recompress"}], "mode": "replace", "fraction": 0.5}],
        adversarial=[{"name": "pgd", "surrogates": ["det.safetensors"], "fraction": 0.5}],
    )
    plan = plan_build(parse_spec(spec), Path("."))
    jobs = _jobs(plan)
    base = [job for job in jobs if not job.perturb_child]
    attacked = [job for job in jobs if job.perturb_child]
    assert len(base) == 28 and len(jobs) == plan.total_jobs
    marked = [job for job in base if job.perturb]
    assert 0 < len(marked) < 28
    assert all(job.perturb == ("jpg",) and job.perturb_seeds == (sample_seed(7, f"{job.key}:jpg"),) for job in marked)
    # attack children: of clean-or-replaced fakes only, never of reals, keyed KEY-pgd
    assert 0 < len(attacked) < 12
    assert all(job.label == "fake" and job.key == f"{job.parent_key}-pgd" for job in attacked)
    assert all(job.perturb == ("pgd",) and job.perturb_seeds == (sample_seed(7, f"{job.key}:pgd"),) for job in attacked)


def test_min_shards_per_split_keeps_groups_whole() -> None:
    spec = tiny_spec(shards={"size": 100, "min_per_split": 5})
    plan = plan_build(parse_spec(spec), Path("."))
    shards = Counter(ref.split for ref in plan.shards)
    assert shards == {"train": 5, "val": 3, "test": 3}  # val and test have fewer groups than 5
    assert [ref.count for ref in plan.shards if ref.split == "train"] == [5, 4, 5, 4, 4]


def test_too_many_parents_is_a_spec_error() -> None:
    spec = tiny_spec(
        manipulate=[{"type": "launder", "name": "vae", "mode": "vae", "model": "builtin:tiny-vae", "count": 99}]
    )
    with pytest.raises(SpecError, match=r"manipulate\[0\].count: asks for 99 parents, the real sources list 16"):
        plan_build(parse_spec(spec), Path("."))


def test_shard_sizes_balance_with_large_groups() -> None:
    from forgeset.builders.planner import _cut

    assert _cut(np.array([1, 1, 4]), 3).tolist() == [0, 1, 2]
    assert _cut(np.array([5, 1]), 2).tolist() == [0, 1]
    assert _cut(np.ones(10, np.int64), 3).tolist() == [0, 0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert math.isclose(sum(_cut(np.ones(7, np.int64), 7)), 21)
