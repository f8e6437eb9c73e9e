"""`--plan-only`'s summary: counts per split, generator and shard, read from the refs alone."""

from __future__ import annotations

from pathlib import Path

from forgeset.builders import planner
from forgeset.builders.plan_report import summarize_plan
from forgeset.builders.planner import plan_build
from forgeset.builders.spec import load_spec, parse_spec
from tests.conftest import SPECS, tiny_spec


def test_summary_counts_splits_generators_and_shards(monkeypatch) -> None:
    plan = plan_build(parse_spec(tiny_spec(shards={"size": 6, "min_per_split": 8})), Path("."))
    monkeypatch.setattr(planner, "_materialize", None)  # the summary must not materialize any shard
    summary = summarize_plan(plan)
    assert (summary["samples"], summary["shards"]) == (28, 14)
    assert summary["splits"]["train"] == {
        "samples": 22,
        "shards": 8,
        "shard_min": 2,
        "shard_median": 3,
        "shard_max": 3,
        "by_stage": {"bundled": 12, "tiny-sd": 10},
    }
    assert summary["splits"]["val"]["by_stage"] == {"bundled": 2, "tiny-sd": 1}
    assert summary["generators"]["tiny-sd"]["samples"] == 12
    assert summary["shard_list"][:2] == [["train/00000.tar", 3], ["train/00001.tar", 3]]
    assert len(summary["shard_list"]) == 14


def test_many_shards_are_summarised_not_listed() -> None:
    loaded = load_spec(SPECS / "forensics-mix.yaml")
    spec = loaded.spec.model_copy(update={"shards": loaded.spec.shards.model_copy(update={"size": 4})})
    summary = summarize_plan(plan_build(spec, loaded.base_dir))
    assert summary["shard_list"] is None
    assert summary["splits"]["train"]["shards"] == 79  # 313 samples in shards of 4
    assert summary["splits"]["test_ood"]["by_stage"] == {"tiny-sd-euler": 24}
    assert summary["samples"] == 475


def test_rendered_plan_names_splits_stages_and_shards() -> None:
    from rich.console import Console

    from forgeset.builders.plan_report import render_plan

    console = Console(record=True, width=200)
    spec = parse_spec(tiny_spec(shards={"size": 6, "min_per_split": 8}))
    render_plan(summarize_plan(plan_build(spec, Path("."))), console)
    text = console.export_text()
    assert "tiny: 28 samples in 14 shards" in text
    assert "train │ 22      │ 8      │ 2/3/3" in text and "bundled 12, tiny-sd 10" in text
    assert "shards: train/00000.tar 3, train/00001.tar 3," in text
    assert "nothing was loaded or written" in text
