"""`forgeset build dataset`: plan, resume, execute (Ray or in-process), finalize the manifest and index.

OUT is a local folder or an fsspec URL (s3://, gs://, memory://): every file of OUT is read and
written through `Storage`. For a URL, the driver's own state (source listings, the prompt cache)
lives in a local folder keyed by the URL, and the build lock is a local file (see build_lock).
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
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
from forgeset.core.builtin_models import cache_root
from forgeset.manifests import layout
from forgeset.manifests.corpus import Corpus
from forgeset.manifests.croissant import croissant_bytes
from forgeset.manifests.index import finalize
from forgeset.manifests.shard_writer import ShardMarker, file_sha256, tar_stamp
from forgeset.manifests.storage import TMP_SUFFIX, Storage, is_url

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

    out_dir: Path | str
    """OUT: a local folder, or the URL (without credentials) of a corpus on object storage."""
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


# Names under OUT, relative (the same on every storage).
_STATE = layout.Layout(Path())
SPEC_HASH = _STATE.spec_hash.as_posix()
SHARD_STATES = _STATE.shard_states.as_posix()
SPLIT_DIRS = tuple(folder.as_posix() for folder in _STATE.split_dirs())


def output_storage(out: Path | str) -> Storage:
    """OUT as a Storage: a URL as given, a local path made absolute."""
    return Storage(out if is_url(out) else Path(out).absolute())


def driver_state_dir(storage: Storage) -> Path:
    """Where the driver keeps the build's local state (source listings, prompt cache).

    OUT/.forgeset for a local OUT; for object storage a folder under the cache keyed by the URL,
    which the planner reads and writes as local files.
    """
    if storage.local is not None:
        return layout.Layout(storage.local).state_dir
    return cache_root() / "remote-builds" / hashlib.sha256(storage.url.encode()).hexdigest()[:32]


def prepare_output(out_dir: Path | str | Storage, spec_sha256: str, fresh: bool, overwrite: bool) -> BuildLock:
    """Make OUT ready: new, resumable (same spec), or replaced (--overwrite); refuse otherwise.

    Returns the build lock, taken before anything in OUT is changed; the caller releases it.
    """
    storage = Storage.of(out_dir)
    if storage.local is None:
        return _prepare_remote(storage, spec_sha256, fresh, overwrite)
    out_dir = storage.local
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


def _prepare_remote(storage: Storage, spec_sha256: str, fresh: bool, overwrite: bool) -> BuildLock:
    """`prepare_output` for object storage: one listing, a local lock keyed by the URL, batched deletes."""
    try:
        lock = BuildLock.acquire(BuildLock.path_for(storage), target=storage.url)
    except BuildLocked as err:
        raise OutputConflict(str(err)) from None
    try:
        names = storage.list()
        if names and SPEC_HASH not in names:
            raise OutputConflict(f"{storage.url} exists and is not a forgeset build's output; choose another --out")
        resume = SPEC_HASH in names
        if resume:
            existing = storage.read_bytes(SPEC_HASH).decode().strip()
            if existing != spec_sha256 and not overwrite:
                raise OutputConflict(_different_spec(storage.url, existing, spec_sha256))
            resume = existing == spec_sha256 and not fresh
            if not resume:
                storage.remove_many(names)
        if not resume:
            shutil.rmtree(driver_state_dir(storage), ignore_errors=True)
        storage.publish_bytes((spec_sha256 + "\n").encode(), SPEC_HASH)
    except BaseException:
        lock.release()
        raise
    return lock


def _different_spec(out: object, existing: str, spec_sha256: str) -> str:
    return (
        f"{out} holds a build of a different spec (sha256 {existing[:12]}..., this spec "
        f"{spec_sha256[:12]}...); pass --overwrite to replace it or choose another --out"
    )


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
            raise OutputConflict(_different_spec(out_dir, existing, spec_sha256))
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


def _marker_name(state: str) -> str:
    return layout.Layout.marker_file(Path(state)).as_posix()


def finished_shards(ctx: BuildContext, plan: Plan, verify: bool = False) -> set[str]:
    """Shards whose marker exists and whose tar is the one it records.

    A marker whose stamp (size and modification time; on object storage size and ETag) matches
    the tar is trusted without reading the tar; `verify`, or a marker written before stamps,
    re-hashes it against the recorded sha256. On object storage every stamp comes from one
    listing and the markers are read in parallel.
    """
    storage = ctx.storage
    if storage.local is None:
        return _finished_remote(ctx, storage, plan, verify)
    done = set()
    for shard in plan.shards:
        marker_file = storage.local_path(_marker_name(ctx.shard_state(shard)))
        marker = ShardMarker(**json.loads(marker_file.read_text())) if marker_file.exists() else None
        tar = storage.local_path(shard.path)
        if marker is None or not _marker_fits(storage, ctx.shard_state(shard), shard, marker):
            continue
        if not tar.exists() or marker.bytes != tar.stat().st_size:
            continue
        trusted = not verify and bool(marker.stamp) and marker.stamp == tar_stamp(tar)
        if trusted or marker.sha256 == file_sha256(tar):
            done.add(shard.path)
    return done


def _marker_fits(
    storage: Storage, state: str, shard: ShardRef, marker: ShardMarker, listed: set[str] | None = None
) -> bool:
    """The marker is this shard's (its path) and its rows and rejects files are there.

    A plan that changed under the same spec hash (a moved spec re-lists its sources, a new planner)
    must not reuse a shard planned differently; at least its path and state files must agree.
    """
    if marker.path != shard.path or marker.count + marker.rejects > shard.count:
        return False
    state_path = Path(state)
    names = [layout.Layout.rows_file(state_path).as_posix(), layout.Layout.rejects_file(state_path).as_posix()]
    return all((name in listed) if listed is not None else storage.exists(name) for name in names)


def _finished_remote(ctx: BuildContext, storage: Storage, plan: Plan, verify: bool) -> set[str]:
    stamps = storage.stamps()
    candidates = [s for s in plan.shards if s.path in stamps and _marker_name(ctx.shard_state(s)) in stamps]

    def finished(shard: ShardRef) -> bool:
        marker = ShardMarker(**json.loads(storage.read_bytes(_marker_name(ctx.shard_state(shard)))))
        if not _marker_fits(storage, ctx.shard_state(shard), shard, marker, set(stamps)):
            return False
        stamp = stamps[shard.path]
        if str(marker.bytes) != stamp.partition(":")[0]:
            return False
        trusted = not verify and bool(marker.stamp) and marker.stamp == stamp
        return trusted or marker.sha256 == storage.sha256(shard.path)

    with ThreadPoolExecutor(max_workers=16) as pool:  # each marker is a request: overlap their latency
        return {shard.path for shard, ok in zip(candidates, pool.map(finished, candidates), strict=True) if ok}


def remove_leftovers(ctx: BuildContext, plan: Plan, done: set[str]) -> int:
    """Delete temp files and the outputs of unfinished shards (an interrupted build's debris)."""
    storage = ctx.storage
    keep_state = {Path(ctx.shard_state(s)).name for s in plan.shards if s.path in done}
    if storage.local is None:  # one listing, one batched delete
        stale = [
            name
            for name in storage.list()
            if name.endswith(TMP_SUFFIX)
            or (name.split("/", 1)[0] in SPLIT_DIRS and name not in done)
            or (name.startswith(SHARD_STATES + "/") and name.rpartition("/")[2].split(".")[0] not in keep_state)
        ]
        storage.remove_many(stale)
        return len(stale)
    removed = 0
    keep_tars = {storage.local_path(path) for path in done}
    paths = layout.Layout(storage.local)
    for folder in paths.split_dirs():
        for path in folder.glob("*") if folder.is_dir() else []:
            if path not in keep_tars:
                shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()
                removed += 1
    for path in paths.shard_states.glob("*"):
        if path.name.split(".")[0] not in keep_state:
            path.unlink()
            removed += 1
    for path in paths.root.glob(f"*{TMP_SUFFIX}"):  # a finalize killed before publishing its files
        path.unlink()
        removed += 1
    return removed


def build_dataset(
    loaded: LoadedSpec,
    out_dir: Path | str,
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
    """Build (or resume) the corpus of `loaded` into `out_dir` (a folder or an fsspec URL).

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
    storage = output_storage(out_dir)
    lock = prepare_output(storage, spec_sha256, fresh, overwrite)
    runner = executor or choose_executor(spec, workers)
    recorder = Timeline() if timeline is not None else None
    runner.timeline = recorder
    try:
        return _build(
            loaded, storage, spec_sha256, runner, progress, on_plan, stop or threading.Event(), verify, strict, recorder
        )
    finally:
        try:
            runner.close()
        finally:
            lock.release()
            if recorder is not None and timeline is not None:
                try:
                    recorder.write(timeline)
                except OSError as err:  # must not replace the build's own outcome or exception
                    log.warning("could not write the timeline to %s: %s", timeline, err)


def _build(
    loaded: LoadedSpec,
    storage: Storage,
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
    out_dir: Path | str = storage.local if storage.local is not None else storage.url
    storage.publish_bytes(spec.resolved_yaml().encode("utf-8"), layout.RESOLVED_SPEC_NAME)
    ctx = BuildContext(spec=spec, base_dir=loaded.base_dir, out_dir=str(storage.local or storage.url_of()))
    if not storage.exists(layout.INDEX_NAME):
        # A cluster and model loading start while the sources are listed; a finished corpus (an
        # index) is most likely a no-op resume, which must not start a cluster and load every model.
        runner.start(ctx)
    started = time.time()
    plan = plan_build(spec, loaded.base_dir, driver_state_dir(storage))
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
        # The index marks a complete build: removed only now, so a run that fails before building
        # (a refused cluster, a planning error, a stop during start-up) leaves a finished corpus whole.
        storage.remove(layout.INDEX_NAME)
        runner.run(ctx, plan, pending, shard_done, stop, batch_done)
    if stop.is_set() and counter["shards"] < len(plan.shards):
        raise BuildInterrupted(counter["shards"], len(plan.shards))
    started = time.time()
    states = [(shard.split, ctx.shard_state(shard)) for shard in plan.shards]
    members = layout.sample_members(spec.image.formats(), spec.localized)
    index = finalize(storage, spec.name, spec_sha256, spec.image.model_dump(mode="json"), members, states)
    # Croissant metadata for loaders that read it (derived from the index, so written after it).
    storage.publish_bytes(croissant_bytes(Corpus.open(storage)), layout.CROISSANT_NAME)
    if timeline is not None:
        timeline.span("finalize", "driver", started, time.time())
    result = BuildResult(out_dir=out_dir, index=index, built_shards=len(pending), reused_shards=len(done))
    # quality rejects the over-generation did not make up for (the manifest read through Storage)
    for line in shortfalls(spec, storage):
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
    """Whether the plan has any real and any fake job (refused inputs may still empty a class).

    Reals are counted per real source (perturbation children of fakes are not reals).
    """
    sources = {params.source_name for params in plan.spec.real}
    reals = sum(count for split in plan.split_stage_counts.values() for name, count in split.items() if name in sources)
    return {"real": reals > 0, "fake": sum(plan.stage_counts.values()) > 0}
