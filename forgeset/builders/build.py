"""`forgeset build dataset`: plan, resume, execute (Ray or in-process), finalize the manifest and index."""

from __future__ import annotations

import logging
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from forgeset.builders.build_lock import BuildLock, BuildLocked
from forgeset.builders.executors import Executor, choose_executor
from forgeset.builders.executors.timeline import Timeline
from forgeset.builders.planner import Plan, ShardRef, plan_build
from forgeset.builders.preflight import preflight
from forgeset.builders.quality_stage import shortfalls
from forgeset.builders.shard_builder import BuildContext, ShardSummary
from forgeset.builders.spec import LoadedSpec
from forgeset.manifests import layout
from forgeset.manifests.index import finalize, write_atomically
from forgeset.manifests.shard_writer import file_sha256, read_marker, tar_stamp

log = logging.getLogger(__name__)


class OutputConflict(Exception):
    """OUT holds something this build must not silently mix with or delete, or another build writes to it."""


class BuildInterrupted(Exception):
    """The build was asked to stop (SIGINT/SIGTERM); finished shards are kept for a resume."""

    def __init__(self, kept_shards: int, total_shards: int) -> None:
        super().__init__(f"interrupted: {kept_shards} of {total_shards} shards are finished and kept")
        self.kept_shards = kept_shards
        self.total_shards = total_shards


class MissingClass(Exception):
    """Under --strict: the corpus has no samples of a class (real or fake)."""


CLASSES = ("real", "fake")


@dataclass
class BuildResult:
    """What a build did: where, the index it wrote, how many shards it reused, what it warns about."""

    out_dir: Path
    index: dict[str, Any]
    built_shards: int
    reused_shards: int
    warnings: list[str] = field(default_factory=list)


def missing_classes(index: dict[str, Any]) -> list[str]:
    """The classes (real, fake) of which a finished corpus holds no sample."""
    labels = index.get("counts", {}).get("all", {}).get("label", {})
    return [label for label in CLASSES if not labels.get(label)]


def missing_class_message(missing: list[str]) -> str:
    """Why a corpus missing a class is unfit for training a detector."""
    return (
        f"the corpus has no {' and no '.join(missing)} samples: a detector cannot learn or be measured on it; "
        "check the spec's real sources and generate/manipulate counts"
    )


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


def finished_shards(ctx: BuildContext, plan: Plan, verify: bool = False) -> set[str]:
    """Shards whose marker exists and whose tar is the one it records.

    A marker whose stamp (size and modification time) matches the tar is trusted without reading
    the tar; `verify`, or a marker written before stamps, re-hashes it against the recorded sha256.
    """
    done = set()
    for shard in plan.shards:
        marker = read_marker(ctx.shard_state(shard))
        tar = ctx.out_dir / shard.path
        if marker is None or not tar.exists() or marker.bytes != tar.stat().st_size:
            continue
        trusted = not verify and bool(marker.stamp) and marker.stamp == tar_stamp(tar)
        if trusted or marker.sha256 == file_sha256(tar):
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
    verify: bool = False,
    strict: bool = False,
    timeline: Path | None = None,
) -> BuildResult:
    """Build (or resume) the corpus of `loaded` into `out_dir`.

    `on_plan(total_samples, total_shards, done_samples, done_shards)` is called once planning is
    done (done = reused from an earlier run); `progress(done_samples, done_shards)` after each
    model batch and each shard. When `stop` is set, no further shard is started, shards in flight
    finish (or are discarded), and BuildInterrupted says how many are kept for a resume.
    `verify` re-hashes reused shards instead of trusting their stamps; `strict` refuses a corpus
    missing a class (MissingClass) where otherwise the result carries a warning; `timeline`
    receives a Chrome-trace JSON of the build.
    """
    preflight(loaded)  # what would fail later on a worker fails now, before OUT is touched
    spec = loaded.spec
    spec_sha256 = spec.sha256()
    out_dir = out_dir.absolute()
    lock = prepare_output(out_dir, spec_sha256, fresh, overwrite)
    runner = executor or choose_executor(spec, workers)
    recorder = Timeline() if timeline is not None else None
    runner.timeline = recorder
    try:
        return _build(
            loaded, out_dir, spec_sha256, runner, progress, on_plan, stop or threading.Event(), verify, strict, recorder
        )
    finally:
        try:
            runner.close()
        finally:
            lock.release()
            if recorder is not None and timeline is not None:
                recorder.write(timeline)


def _build(
    loaded: LoadedSpec,
    out_dir: Path,
    spec_sha256: str,
    runner: Executor,
    progress: Callable[[int, int], Any] | None,
    on_plan: Callable[[int, int, int, int], Any] | None,
    stop: threading.Event,
    verify: bool,
    strict: bool,
    timeline: Timeline | None,
) -> BuildResult:
    spec = loaded.spec
    paths = layout.Layout(out_dir)
    write_atomically(paths.resolved_spec, spec.resolved_yaml())
    paths.index.unlink(missing_ok=True)  # the index marks a complete build; it is rewritten last
    ctx = BuildContext(spec=spec, base_dir=loaded.base_dir, out_dir=out_dir)
    runner.start(ctx)  # a cluster and model loading start while the sources are listed
    started = time.time()
    plan = plan_build(spec, loaded.base_dir, paths.state_dir)
    if timeline is not None:
        timeline.span("plan", "driver", started, time.time(), shards=len(plan.shards), jobs=plan.total_jobs)
    planned_missing = [label for label, planned in _planned_classes(plan).items() if not planned]
    if strict and planned_missing:
        raise MissingClass(missing_class_message(planned_missing))
    started = time.time()
    done = finished_shards(ctx, plan, verify)
    remove_leftovers(ctx, plan, done)
    if timeline is not None:
        timeline.span("resume check", "driver", started, time.time(), reused=len(done))
    pending: list[ShardRef] = [shard for shard in plan.shards if shard.path not in done]
    counter = {"samples": sum(s.count for s in plan.shards if s.path in done), "shards": len(done)}
    if on_plan:
        on_plan(plan.total_jobs, len(plan.shards), counter["samples"], counter["shards"])

    def batch_done(jobs: int) -> None:
        counter["samples"] += jobs
        if progress:
            progress(counter["samples"], counter["shards"])

    def shard_done(summary: ShardSummary) -> None:
        counter["shards"] += 1
        if progress:
            progress(counter["samples"], counter["shards"])

    if pending:
        runner.run(ctx, plan, pending, shard_done, stop, batch_done)
    if stop.is_set() and counter["shards"] < len(plan.shards):
        raise BuildInterrupted(counter["shards"], len(plan.shards))
    started = time.time()
    states = [(shard.split, ctx.shard_state(shard)) for shard in plan.shards]
    members = layout.sample_members(spec.image.formats(), spec.localized)
    index = finalize(out_dir, spec.name, spec_sha256, spec.image.model_dump(mode="json"), members, states)
    if timeline is not None:
        timeline.span("finalize", "driver", started, time.time())
    result = BuildResult(out_dir=out_dir, index=index, built_shards=len(pending), reused_shards=len(done))
    for line in shortfalls(spec, out_dir):  # quality rejects the over-generation did not make up for
        result.warnings.append(line)
        log.warning(line)
    missing = missing_classes(index)
    if missing:
        if strict:
            raise MissingClass(missing_class_message(missing) + f" (the corpus is written to {out_dir})")
        result.warnings.append(missing_class_message(missing))
        log.warning(missing_class_message(missing))
    return result


def _planned_classes(plan: Plan) -> dict[str, bool]:
    """Whether the plan has any real and any fake job (refused inputs may still empty a class)."""
    fakes = sum(plan.stage_counts.values())
    return {"real": bool(plan.spec.real) and plan.total_jobs > fakes, "fake": fakes > 0}
