"""`--plan-only`: what a spec would build, and a GPU-time estimate, without loading any model.

The estimate is in SD1.5-equivalent seconds on one H100: plain diffusers at batch 32 makes
6.08 images/s at 512 px and 25 steps with CFG (../shared/bench), i.e. 6.58 ms per image-step at
512 px, scaled by steps and by pixel count. Larger architectures cost more per step (SDXL about
13.5 / 1.6 TFLOP per CFG step, 8.4x at the same size), so read it as a lower bound for them.
"""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from forgeset.builders.planner import Plan

SECONDS_PER_IMAGE_STEP_512 = 1 / 6.08 / 25


MAX_LISTED_SHARDS = 32
"""Up to this many shards the summary lists each one; beyond, per split min/median/max sizes."""


def summarize_plan(plan: Plan) -> dict[str, Any]:
    """Counts per split (samples, shards, shard sizes, samples per source and generator), per
    generator (samples, steps, size, estimate), per shard (listed when few), totals.

    Reads only the plan's counts and shard refs: no shard is materialized, nothing is written.
    """
    sizes: dict[str, list[int]] = {}
    for ref in plan.shards:
        sizes.setdefault(ref.split, []).append(ref.count)
    splits: dict[str, dict[str, Any]] = {}
    for split, counts in sizes.items():
        ordered = sorted(counts)
        splits[split] = {
            "samples": sum(counts),
            "shards": len(counts),
            "shard_min": ordered[0],
            "shard_median": ordered[len(ordered) // 2],
            "shard_max": ordered[-1],
            "by_stage": {name: n for name, n in plan.split_stage_counts.get(split, {}).items() if n},
        }
    made = plan.stage_counts
    generators = {}
    for params in plan.spec.stages:
        name = params.generator_name
        steps = int(getattr(params, "steps", 1) or 1)
        size = params.size or plan.spec.image.size
        count = made.get(name, 0)
        generators[name] = {
            "type": params.type,
            "model": params.model,
            "samples": count,
            "steps": steps,
            "size": size,
            "est_gpu_s": round(count * steps * (size / 512) ** 2 * SECONDS_PER_IMAGE_STEP_512, 1),
        }
    return {
        "name": plan.spec.name,
        "samples": plan.total_jobs,
        "shards": len(plan.shards),
        "splits": splits,
        "shard_list": [[ref.path, ref.count] for ref in plan.shards] if len(plan.shards) <= MAX_LISTED_SHARDS else None,
        "generators": generators,
        "est_gpu_s": round(sum(g["est_gpu_s"] for g in generators.values()), 1),
    }


def render_plan(summary: dict[str, Any], console: Console) -> None:
    """Print a `summarize_plan` summary: splits (samples, shards, shard sizes, per source and
    generator), generators with their GPU-time estimate, and each shard when there are few."""
    splits = Table(title=escape(f"{summary['name']}: {summary['samples']} samples in {summary['shards']} shards"))
    for column in ("split", "samples", "shards", "shard min/median/max", "per source and generator"):
        splits.add_column(column)
    for split, entry in summary["splits"].items():
        stages = ", ".join(f"{name} {count}" for name, count in entry["by_stage"].items())
        sizes = f"{entry['shard_min']}/{entry['shard_median']}/{entry['shard_max']}"
        splits.add_row(escape(split), str(entry["samples"]), str(entry["shards"]), sizes, escape(stages))
    console.print(splits)
    stages_table = Table(title="generators and manipulations (GPU time: SD1.5-equivalent seconds on one H100)")
    for column in ("name", "type", "model", "samples", "steps", "size", "est. GPU s"):
        stages_table.add_column(column)
    for name, entry in summary["generators"].items():
        stages_table.add_row(
            *(escape(str(v)) for v in (name, entry["type"], entry["model"], entry["samples"], entry["steps"])),
            str(entry["size"]),
            str(entry["est_gpu_s"]),
        )
    console.print(stages_table)
    if summary["shard_list"] is not None:
        console.print("shards: " + ", ".join(f"{escape(path)} {count}" for path, count in summary["shard_list"]))
    hours = summary["est_gpu_s"] / 3600
    console.print(f"estimated GPU time: {summary['est_gpu_s']} s ({hours:.2f} h); nothing was loaded or written")
