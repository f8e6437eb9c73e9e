"""`forgeset build dataset`: plan, resume, execute (Ray or in-process), finalize the manifest and index."""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from forgeset.builders.build_lock import BuildLock, BuildLocked
from forgeset.builders.executors import Executor, RayExecutor
from forgeset.builders.planner import Plan, ShardPlan, plan_build
from forgeset.builders.preflight import preflight
from forgeset.builders.shard_builder import BuildContext, ShardSummary
from forgeset.builders.spec import LoadedSpec
from forgeset.manifests import layout
from forgeset.manifests.index import finalize, write_atomically
from forgeset.manifests.shard_writer import file_sha256, read_marker


class OutputConflict(Exception):
    """OUT holds something this build must not silently mix with or delete, or another build writes to it."""


class BuildInterrupted(Exception):
    """The build was asked to stop (SIGINT/SIGTERM); finished shards are kept for a resume."""

    def __init__(self, kept_shards: int, total_shards: int) -> None:
        super().__init__(f"interrupted: {kept_shards} of {total_shards} shards are finished and kept")
        self.kept_shards = kept_shards
        self.total_shards = total_shards


@dataclass
class BuildResult:
    """What a build did: where, the index it wrote, and how many shards it reused."""

    out_dir: Path
    index: dict[str, Any]
    built_shards: int
    reused_shards: int


def prepare_output(out_dir: Path, spec_sha256: str, fresh: bool, overwrite: bool) -> BuildLock:
    """Make OUT ready: new, resumable (same spec), or replaced (--overwrite); refuse otherwise.

    Returns the build lock, taken before anything in OUT is changed; the caller releases it.
    """
    paths = layout.Layout(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()) and not _is_build_output(paths):
        raise OutputConflict(f"{out_dir} exists and is not a forgeset build's output; choose another --out")
    try:
        lock = BuildLock.acquire(paths.build_lock)
    except BuildLocked as err:
        raise OutputConflict(str(err)) from None
    try:
        _reset_for(paths, spec_sha256, fresh, overwrite)
    except BaseException:
        lock.release()
        raise
    return lock


def _is_build_output(paths: layout.Layout) -> bool:
    """A build's OUT: it has the spec hash, or only the state an interrupted first attempt left (the lock)."""
    if paths.spec_hash.is_file():
        return True
    if not paths.state_dir.is_dir() or any(p != paths.state_dir for p in paths.root.iterdir()):
        return False
    return all(
        p == paths.build_lock or (p == paths.shard_states and not any(p.iterdir())) for p in paths.state_dir.iterdir()
    )


def _reset_for(paths: layout.Layout, spec_sha256: str, fresh: bool, overwrite: bool) -> None:
    """Keep a same-spec build for resuming, or clear OUT (all but the lock) for a fresh or new one."""
    out_dir, state_hash = paths.root, paths.spec_hash
    if state_hash.exists():
        existing = state_hash.read_text().strip()
        if existing != spec_sha256 and not overwrite:
            raise OutputConflict(
                f"{out_dir} holds a build of a different spec (sha256 {existing[:12]}..., this spec "
                f"{spec_sha256[:12]}...); pass --overwrite to replace it or choose another --out"
            )
        if existing != spec_sha256 or fresh:
            for child in out_dir.iterdir():
                if child == paths.state_dir:
                    for state in child.iterdir():
                        if state != paths.build_lock:
                            shutil.rmtree(state) if state.is_dir() else state.unlink()
                else:
                    shutil.rmtree(child) if child.is_dir() else child.unlink()
    paths.shard_states.mkdir(parents=True, exist_ok=True)
    state_hash.write_text(spec_sha256 + "\n")


def finished_shards(ctx: BuildContext, plan: Plan) -> set[str]:
    """Shards whose marker exists and whose tar still has the recorded sha256."""
    done = set()
    for shard in plan.shards:
        marker = read_marker(ctx.shard_state(shard))
        tar = ctx.out_dir / shard.path
        if (
            marker is not None
            and tar.exists()
            and marker.bytes == tar.stat().st_size
            and marker.sha256 == file_sha256(tar)
        ):
            done.add(shard.path)
    return done


def remove_leftovers(ctx: BuildContext, plan: Plan, done: set[str]) -> int:
    """Delete temp files and the outputs of unfinished shards (an interrupted build's debris)."""
    removed = 0
    keep_tars = {ctx.out_dir / path for path in done}
    keep_state = {ctx.shard_state(s).name for s in plan.shards if s.path in done}
    paths = layout.Layout(ctx.out_dir)
    for folder in paths.split_dirs():
        for path in folder.glob("*") if folder.is_dir() else []:
            if path not in keep_tars:
                shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()
                removed += 1
    for path in paths.shard_states.glob("*"):
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
    stop: threading.Event | None = None,
) -> BuildResult:
    """Build (or resume) the corpus of `loaded` into `out_dir`.

    `on_plan(total_samples, total_shards, done_samples, done_shards)` is called once planning is
    done (done = reused from an earlier run); `progress(done_samples, done_shards)` after each shard.
    When `stop` is set, no further shard is started, shards in flight finish (or are discarded),
    and BuildInterrupted says how many are kept for a resume.
    """
    preflight(loaded)  # what would fail later on a worker fails now, before OUT is touched
    spec = loaded.spec
    spec_sha256 = spec.sha256()
    out_dir = out_dir.absolute()
    lock = prepare_output(out_dir, spec_sha256, fresh, overwrite)
    try:
        return _build(loaded, out_dir, spec_sha256, workers, executor, progress, on_plan, stop or threading.Event())
    finally:
        lock.release()


def _build(
    loaded: LoadedSpec,
    out_dir: Path,
    spec_sha256: str,
    workers: int | None,
    executor: Executor | None,
    progress: Callable[[int, int], Any] | None,
    on_plan: Callable[[int, int, int, int], Any] | None,
    stop: threading.Event,
) -> BuildResult:
    spec = loaded.spec
    paths = layout.Layout(out_dir)
    write_atomically(paths.resolved_spec, spec.resolved_yaml())
    paths.index.unlink(missing_ok=True)  # the index marks a complete build; it is rewritten last
    plan = plan_build(spec, loaded.base_dir)
    ctx = BuildContext(spec=spec, base_dir=loaded.base_dir, out_dir=out_dir)
    done = finished_shards(ctx, plan)
    remove_leftovers(ctx, plan, done)
    pending: list[ShardPlan] = [shard for shard in plan.shards if shard.path not in done]
    counter = {"samples": sum(len(s.jobs) for s in plan.shards if s.path in done), "shards": len(done)}
    if on_plan:
        on_plan(plan.total_jobs, len(plan.shards), counter["samples"], counter["shards"])

    def shard_done(summary: ShardSummary) -> None:
        counter["samples"] += summary.marker.count + summary.marker.rejects
        counter["shards"] += 1
        if progress:
            progress(counter["samples"], counter["shards"])

    if pending:
        runner = executor or RayExecutor(workers or os.cpu_count() or 1)
        runner.run(ctx, pending, shard_done, stop)
    if stop.is_set() and counter["shards"] < len(plan.shards):
        raise BuildInterrupted(counter["shards"], len(plan.shards))
    states = [(shard.split, ctx.shard_state(shard)) for shard in plan.shards]
    members = layout.sample_members(spec.image.formats(), spec.localized)
    index = finalize(out_dir, spec.name, spec_sha256, spec.image.model_dump(mode="json"), members, states)
    return BuildResult(out_dir=out_dir, index=index, built_shards=len(pending), reused_shards=len(done))
