"""`forgeset build dataset`: plan, resume, execute on Ray, finalize the manifest and index."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from forgeset.builders.executors import Executor, RayExecutor
from forgeset.builders.planner import Plan, ShardPlan, plan_build
from forgeset.builders.shard_builder import STATE_DIR, BuildContext, ShardSummary, marker_path
from forgeset.builders.spec import LoadedSpec
from forgeset.manifests.index import INDEX_NAME, RESOLVED_SPEC_NAME, finalize, write_atomically
from forgeset.manifests.shard_writer import file_sha256

SPEC_HASH_NAME = "spec.sha256"


class OutputConflict(Exception):
    """OUT holds something this build must not silently mix with or delete."""


@dataclass
class BuildResult:
    """What a build did: where, the index it wrote, and how many shards it reused."""

    out_dir: Path
    index: dict[str, Any]
    built_shards: int
    reused_shards: int


def prepare_output(out_dir: Path, spec_sha256: str, fresh: bool, overwrite: bool) -> None:
    """Make OUT ready: new, resumable (same spec), or replaced (--overwrite); refuse otherwise."""
    state_hash = out_dir / STATE_DIR / SPEC_HASH_NAME
    if out_dir.exists() and any(out_dir.iterdir()):
        if not state_hash.exists():
            raise OutputConflict(f"{out_dir} exists and is not a forgeset output; choose another --out")
        existing = state_hash.read_text().strip()
        if existing != spec_sha256 and not overwrite:
            raise OutputConflict(
                f"{out_dir} holds a build of a different spec (sha256 {existing[:12]}..., this spec "
                f"{spec_sha256[:12]}...); pass --overwrite to replace it or choose another --out"
            )
        if existing != spec_sha256 or fresh:
            for child in out_dir.iterdir():
                shutil.rmtree(child) if child.is_dir() else child.unlink()
    (out_dir / STATE_DIR / "shards").mkdir(parents=True, exist_ok=True)
    state_hash.write_text(spec_sha256 + "\n")


def finished_shards(ctx: BuildContext, plan: Plan) -> set[str]:
    """Shards whose marker exists and whose tar still has the recorded sha256."""
    done = set()
    for shard in plan.shards:
        marker = marker_path(ctx, shard)
        tar = ctx.out_dir / shard.path
        if marker.exists() and tar.exists():
            recorded = json.loads(marker.read_text())
            if recorded["bytes"] == tar.stat().st_size and recorded["sha256"] == file_sha256(tar):
                done.add(shard.path)
    return done


def remove_leftovers(ctx: BuildContext, plan: Plan, done: set[str]) -> int:
    """Delete temp files and the outputs of unfinished shards (an interrupted build's debris)."""
    removed = 0
    keep_tars = {ctx.out_dir / path for path in done}
    keep_state = {ctx.shard_state(s).name for s in plan.shards if s.path in done}
    for split in {shard.split for shard in plan.shards} | {"train", "val", "test"}:
        folder = ctx.out_dir / split
        for path in folder.glob("*") if folder.is_dir() else []:
            if path not in keep_tars:
                path.unlink()
                removed += 1
    for path in (ctx.out_dir / STATE_DIR / "shards").glob("*"):
        if path.name.split(".")[0] not in keep_state:
            path.unlink()
            removed += 1
    return removed


def build_dataset(
    loaded: LoadedSpec,
    out_dir: Path,
    workers: int | None = None,
    executor: Executor | None = None,
    fresh: bool = False,
    overwrite: bool = False,
    progress: Callable[[int, int], Any] | None = None,
    on_plan: Callable[[int, int, int, int], Any] | None = None,
) -> BuildResult:
    """Build (or resume) the corpus of `loaded` into `out_dir`.

    `on_plan(total_samples, total_shards, done_samples, done_shards)` is called once planning is
    done (done = reused from an earlier run); `progress(done_samples, done_shards)` after each shard.
    """
    spec = loaded.spec
    spec_sha256 = spec.sha256()
    out_dir = out_dir.absolute()
    prepare_output(out_dir, spec_sha256, fresh, overwrite)
    write_atomically(out_dir / RESOLVED_SPEC_NAME, spec.resolved_yaml())
    (out_dir / INDEX_NAME).unlink(missing_ok=True)  # the index marks a complete build; it is rewritten last
    plan = plan_build(spec, loaded.base_dir)
    ctx = BuildContext(spec=spec, base_dir=loaded.base_dir, out_dir=out_dir)
    done = finished_shards(ctx, plan)
    remove_leftovers(ctx, plan, done)
    pending: list[ShardPlan] = [shard for shard in plan.shards if shard.path not in done]
    counter = {"samples": sum(len(s.jobs) for s in plan.shards if s.path in done), "shards": len(done)}
    if on_plan:
        on_plan(plan.total_jobs, len(plan.shards), counter["samples"], counter["shards"])

    def shard_done(summary: ShardSummary) -> None:
        counter["samples"] += summary.stats.count + summary.rejects
        counter["shards"] += 1
        if progress:
            progress(counter["samples"], counter["shards"])

    if pending:
        runner = executor or RayExecutor(workers or os.cpu_count() or 1)
        runner.run(ctx, pending, shard_done)
    states = [(shard.split, ctx.shard_state(shard)) for shard in plan.shards]
    members = sorted([*spec.image.extensions(), "json", "cls", *(["mask.png"] if spec.localized else [])])
    index = finalize(out_dir, spec.name, spec_sha256, spec.image.model_dump(mode="json"), members, states)
    return BuildResult(out_dir=out_dir, index=index, built_shards=len(pending), reused_shards=len(done))
