"""Keys, seeds, splits and shards are pure functions of the spec."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from forgeset.builders.planner import Plan, ShardPlan, plan_build
from forgeset.builders.spec import parse_spec
from forgeset.core.seeds import sample_seed
from tests.conftest import tiny_spec


def _shards(plan: Plan) -> list[ShardPlan]:
    return [plan.shard(ref) for ref in plan.shards]


def _plan(**overrides):
    return plan_build(parse_spec(tiny_spec(**overrides)), Path("."))


def test_plan_is_deterministic_and_keys_have_no_dots() -> None:
    first, second = _plan(), _plan()
    assert [(s.path, [j.key for j in s.jobs]) for s in _shards(first)] == [
        (s.path, [j.key for j in s.jobs]) for s in _shards(second)
    ]
    keys = [job.key for shard in _shards(first) for job in shard.jobs]
    assert len(keys) == len(set(keys)) == 16 + 12
    assert not any("." in key for key in keys)
    assert Counter(job.label for shard in _shards(first) for job in shard.jobs) == {"real": 16, "fake": 12}


def test_shards_hold_one_split_in_key_order_and_respect_the_size() -> None:
    plan = _plan()
    for shard in _shards(plan):
        keys = [job.key for job in shard.jobs]
        assert keys == sorted(keys)
        assert {job.split for job in shard.jobs} == {shard.split}
        assert 0 < len(keys) <= 6
    assert next(s.path for s in plan.shards if s.split == "train") == "train/00000.tar"


def test_seeds_depend_on_spec_seed_and_key_only() -> None:
    plan = _plan()
    fake = next(job for shard in _shards(plan) for job in shard.jobs if job.label == "fake")
    assert fake.seed == sample_seed(7, fake.key)
    assert 0 <= fake.seed < 2**63
    # A policy change (format, shard size) keeps every sample's seed and split.
    other = _plan(image={"size": 32, "format": "jpeg"}, shards={"size": 4})
    jobs = {job.key: job for shard in _shards(other) for job in shard.jobs}
    assert jobs[fake.key].seed == fake.seed
    assert all(jobs[job.key].split == job.split for shard in _shards(plan) for job in shard.jobs)


def test_split_fractions_are_followed() -> None:
    spec = tiny_spec(splits={"train": 0.5, "val": 0.0, "test": 0.5})
    spec["generate"][0]["count"] = 400
    plan = plan_build(parse_spec(spec), Path("."))
    assert plan.counts["val"] == 0
    assert 170 <= plan.counts["train"] <= 246  # 416 samples at 0.5: within 4 sigma


def test_caption_prompts_pair_a_fake_with_its_real(tmp_path: Path) -> None:
    from tests.builders.test_sources import captioned_tars

    tars = captioned_tars(tmp_path)
    spec = tiny_spec(
        real=[{"type": "webdataset", "name": "coco", "urls": [str(tars)], "caption_extension": "txt"}],
        prompts={"type": "captions", "source": "coco"},
    )
    plan = plan_build(parse_spec(spec), tmp_path)
    jobs = {job.key: job for shard in _shards(plan) for job in shard.jobs}
    fake = jobs["tiny-sd-00000001"]
    real = jobs["coco-00000001"]
    assert fake.prompt == "caption number 1"
    assert fake.group == real.key and fake.split == real.split
