"""End-to-end builds on a real local Ray cluster: reproducible, resumable, safe with bad input."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from forgeset.builders.build import OutputConflict
from forgeset.cli import app
from forgeset.manifests.layout import Layout
from tests.conftest import HOSTILE_ACCEPTED, HOSTILE_REJECTS, manifest_rows, tiny_spec, write_spec


def shard_hashes(out: Path) -> dict[str, str]:
    return {s["path"]: s["sha256"] for s in json.loads((out / "index.json").read_text())["shards"]}


def test_output_layout_index_and_manifest(tiny_corpus: Path) -> None:
    index = json.loads((tiny_corpus / "index.json").read_text())
    assert index["format_version"] == 2 and index["name"] == "tiny"
    assert index["members"] == ["cls", "json", "png"]
    assert index["counts"]["all"]["label"] == {"fake": 12, "real": 16}
    assert index["samples"] == 28 and index["rejects"] == 0
    assert index["libraries"]["diffusers"] and index["libraries"]["zlib"]
    assert (tiny_corpus / "spec.resolved.yaml").read_text().startswith("name: tiny")
    from forgeset.builders.spec import load_spec

    assert index["spec_sha256"] == load_spec(tiny_corpus.parent / "spec.yaml").spec.sha256()
    manifest = list(manifest_rows(tiny_corpus).values())
    assert len(manifest) == 28
    fake = next(row for row in manifest if row["label"] == "fake")
    assert fake["model"] == "builtin:tiny-sd" and fake["revision"].startswith("recipe-")
    assert (fake["steps"], fake["guidance"], fake["scheduler"]) == (2, 3.0, "DDIMScheduler")
    assert fake["prompt"] in {"a photo of a cat", "a photo of a dog", "a photo of a car"}
    assert fake["kind"] == "text2image" and fake["generator"] == "tiny-sd" and fake["seed"] >= 0
    assert (fake["device"], fake["gen_size"], fake["dtype"]) == ("cpu", 32, "float32")
    real = next(row for row in manifest if row["label"] == "real")
    assert real["source"].startswith("bundled:") and real["license"]
    assert real["model"] is None and real["seed"] is None
    for row in manifest:
        assert (row["width"], row["height"], row["format"], row["quality"]) == (32, 32, "png", 1)
        assert row["shard"].startswith(row["split"] + "/")
    assert not list(tiny_corpus.rglob("*.tmp"))


def test_ray_and_the_local_executor_write_identical_shards(
    tmp_path: Path, tiny_corpus: Path, build_corpus: Callable[..., Path], ray_session: object
) -> None:
    from forgeset.builders.executors import RayExecutor

    timeline = tmp_path / "timeline.json"
    seen: list[tuple[int, int]] = []
    on_ray = build_corpus(  # tiny_corpus: local executor
        tmp_path / "w1",
        tiny_spec(),
        executor=RayExecutor(2),
        timeline=timeline,
        progress=lambda samples, shards: seen.append((samples, shards)),
    )
    assert shard_hashes(on_ray) == shard_hashes(tiny_corpus)
    assert (on_ray / "manifest.parquet").read_bytes() == (tiny_corpus / "manifest.parquet").read_bytes()
    assert seen[-1] == (28, len(shard_hashes(on_ray)))
    names = [event["name"] for event in json.loads(timeline.read_text()) if event.get("ph") == "X"]
    assert names.count("host 0 start-up") == 1 and names.count("host 1 start-up") == 1  # one model, two hosts
    assert sum(name.startswith("shard ") for name in names) == len(shard_hashes(on_ray))
    assert "run" in names  # Ray's own task events (StageHost.run) are merged in


def test_the_process_pool_writes_the_local_executors_bytes_and_reports_every_batch(
    tmp_path: Path, tiny_corpus: Path, build_corpus: Callable[..., Path]
) -> None:
    from forgeset.builders.executors import ProcessExecutor

    seen: list[tuple[int, int]] = []
    pooled = build_corpus(
        tmp_path / "pool",
        tiny_spec(),
        executor=ProcessExecutor(2),
        progress=lambda samples, shards: seen.append((samples, shards)),
    )
    assert shard_hashes(pooled) == shard_hashes(tiny_corpus)
    assert (pooled / "manifest.parquet").read_bytes() == (tiny_corpus / "manifest.parquet").read_bytes()
    assert seen[-1] == (28, len(shard_hashes(pooled)))
    samples = [done for done, _ in seen]
    assert samples == sorted(samples) and len(set(samples)) > len(shard_hashes(pooled))  # batches, not only shards


def test_a_worker_killed_in_the_pool_fails_the_build_naming_a_shard_and_a_resume_completes_it(
    tmp_path: Path, tiny_corpus: Path, build_corpus: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    from forgeset.builders.executors import ProcessExecutor, ShardFailed
    from forgeset.core.faults import FAULT_ENV

    monkeypatch.setenv(FAULT_ENV, "tar-written:3")  # the worker writing its 3rd tar dies (SIGKILL)
    with pytest.raises(ShardFailed, match=r"shard (train|val|test)/\d{5}\.tar failed: a worker process died"):
        build_corpus(tmp_path / "fail", tiny_spec(), executor=ProcessExecutor(2))
    monkeypatch.delenv(FAULT_ENV)
    resumed = build_corpus(tmp_path / "fail", tiny_spec(), executor=ProcessExecutor(2))
    assert shard_hashes(resumed) == shard_hashes(tiny_corpus)


def test_cli_executor_choice_is_checked(tmp_path: Path) -> None:
    spec_path = write_spec(tmp_path, tiny_spec())
    command = ["build", "dataset", "--spec", str(spec_path), "--out", str(tmp_path / "out"), "--executor", "dask"]
    result = CliRunner().invoke(app, command)
    assert result.exit_code == 2
    assert "--executor must be one of auto, ray, local, processes, got 'dask'" in result.output
    result = CliRunner().invoke(app, [*command[:-1], "local", "--ray-address", "auto"])
    assert result.exit_code == 2 and "--ray-address needs --executor ray" in result.output
    assert not (tmp_path / "out").exists()


def test_hostile_folder_gives_rejects_and_normalized_samples(
    tmp_path: Path, hostile_images: Path, build_corpus: Callable[..., Path]
) -> None:
    spec = tiny_spec(
        real=[{"type": "folder", "name": "mixed", "path": str(hostile_images)}],
        generate=[],
        shards={"size": 4},
        splits={"train": 1.0, "val": 0.0, "test": 0.0},
    )
    del spec["prompts"]
    out = build_corpus(tmp_path, spec)
    rejects = {r["ref"]: r for r in pq.read_table(out / "rejects.parquet").to_pylist()}
    assert {ref: r["reason"] for ref, r in rejects.items()} == HOSTILE_REJECTS
    manifest = list(manifest_rows(out).values())
    assert sorted(row["source"].removeprefix("mixed:") for row in manifest) == HOSTILE_ACCEPTED
    rotated = next(row for row in manifest if row["source"].endswith("rotated_exif6.jpg"))
    assert [op["op"] for op in json.loads(rotated["ops"])] == ["exif_orientation", "center_crop", "resize"]
    # Every shard that held a refused input still finished with its other samples.
    index = json.loads((out / "index.json").read_text())
    assert sum(s["count"] for s in index["shards"]) == len(HOSTILE_ACCEPTED)
    assert index["rejects"] == len(HOSTILE_REJECTS)


def test_different_spec_in_existing_out_is_refused(tmp_path: Path, tiny_corpus: Path) -> None:
    spec_path = write_spec(tmp_path, tiny_spec(seed=99))
    result = CliRunner().invoke(app, ["build", "dataset", "--spec", str(spec_path), "--out", str(tiny_corpus)])
    assert result.exit_code == 2
    assert "holds a build of a different spec" in result.output and "--overwrite" in result.output
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("precious")
    result = CliRunner().invoke(
        app, ["build", "dataset", "--spec", str(spec_path), "--out", str(foreign), "--overwrite"]
    )
    assert result.exit_code == 2 and "is not a forgeset build's output" in " ".join(result.output.split())
    assert (foreign / "thesis.tex").read_text() == "precious"


def test_overwrite_replaces_a_build_of_another_spec(tmp_path: Path, build_corpus: Callable[..., Path]) -> None:
    from forgeset.builders.build import prepare_output

    out = build_corpus(tmp_path, tiny_spec(generate=[{**tiny_spec()["generate"][0], "count": 2}]))
    with pytest.raises(OutputConflict):
        prepare_output(out, "0" * 64, fresh=False, overwrite=False)
    prepare_output(out, "0" * 64, fresh=False, overwrite=True)
    assert not (out / "index.json").exists() and not (out / "train").exists()


def _wait_for(predicate: Callable[[], bool], timeout: float, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if process.poll() is not None:
            raise AssertionError(f"build exited early with {process.returncode}")
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for the build")
        time.sleep(0.05)


def test_sigkilled_build_resumes_to_the_same_bytes(tmp_path: Path, tiny_corpus: Path) -> None:
    """Kill the whole process group after the first shard's marker appears, then resume."""
    work = tmp_path / "killed"
    spec_path = write_spec(work, tiny_spec())
    out = work / "out"
    command = [
        sys.executable,
        "-m",
        "forgeset.cli",
        "build",
        "dataset",
        "--spec",
        str(spec_path),
        "--out",
        str(out),
        "--workers",
        "1",
        "--executor",
        "ray",
    ]
    process = subprocess.Popen(
        command, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env={**os.environ}
    )
    markers = Layout(out).shard_states
    try:
        _wait_for(lambda: any(markers.glob("*.done.json")), 240, process)
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(30)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    assert not (out / "index.json").exists()
    resumed = subprocess.run(command, capture_output=True, text=True, timeout=300, env={**os.environ})
    assert resumed.returncode == 0, resumed.stderr
    # A Ray worker orphaned by the kill may finish one more shard before it exits; count at resume.
    reused = re.search(r"(\d+) built, (\d+) reused", " ".join(resumed.stderr.split()))
    assert reused, resumed.stderr
    total = len(shard_hashes(tiny_corpus))
    assert int(reused[1]) + int(reused[2]) == total and 1 <= int(reused[2]) < total
    assert shard_hashes(out) == shard_hashes(tiny_corpus)
    assert (out / "manifest.parquet").read_bytes() == (tiny_corpus / "manifest.parquet").read_bytes()
    assert not list(out.rglob("*.tmp"))


def test_resume_removes_leftovers_of_unfinished_shards(
    tmp_path: Path, tiny_corpus: Path, build_corpus: Callable[..., Path]
) -> None:
    import shutil

    out = tmp_path / "out"
    shutil.copytree(tiny_corpus, out)
    (out / "index.json").unlink()
    Layout.marker_file(Layout(out).shard_state("train", 1)).unlink()  # as if killed before the marker
    (out / "train" / "00002.tar.tmp").write_bytes(b"half a tar")
    (out / "train" / "00003.tar").write_bytes(b"tampered")  # marker says otherwise: rebuilt
    build_corpus(tmp_path, tiny_spec())
    assert shard_hashes(out) == shard_hashes(tiny_corpus)
    assert not (out / "train" / "00002.tar.tmp").exists()


def test_cli_build_reports_counts_and_a_rerun_reuses_every_shard(tmp_path: Path, ray_session: object) -> None:
    spec = tiny_spec(real=[{"type": "bundled", "tile": 64, "max_tiles": 1, "photos": ["coffee", "rocket"]}])
    spec["generate"][0]["count"] = 3
    spec_path = write_spec(tmp_path, spec)
    out = tmp_path / "out"
    command = ["build", "dataset", "--spec", str(spec_path), "--out", str(out), "--workers", "2"]
    first = CliRunner().invoke(app, command)
    assert first.exit_code == 0, first.output
    shards = len(json.loads((out / "index.json").read_text())["shards"])
    assert f"built 5 samples in {shards} shards ({shards} built), 0 rejected" in " ".join(first.output.split())
    again = CliRunner().invoke(app, command)
    assert again.exit_code == 0
    assert f"(0 built, {shards} reused)" in " ".join(again.output.split())


def test_replace_mode_degrades_samples_in_place(tmp_path: Path, build_corpus: Callable[..., Path]) -> None:
    perturb = [
        {
            "name": "blur",
            "ops": [{"type": "gaussian_blur", "sigma": {"range": [1.0, 2.0]}}],
            "target": "real",
            "mode": "replace",
        }
    ]
    out = build_corpus(tmp_path, tiny_spec(perturb=perturb))
    rows = list(manifest_rows(out).values())
    assert len(rows) == 28  # no new samples
    for row in rows:
        ops = [op["op"] for op in json.loads(row["ops"])]
        if row["label"] == "real":
            assert row["perturbation"] == "blur" and "gaussian_blur" in ops and row["parent_key"] is None
            assert row["perturb_seeds"] is not None and int(row["perturb_seeds"]) >= 0
        else:
            assert row["perturbation"] is None and "gaussian_blur" not in ops


def test_a_folder_with_state_but_no_spec_hash_is_not_reused(tmp_path: Path) -> None:
    """A filtered corpus has .forgeset/ with done-markers but no spec hash: a build must not reuse its shards."""
    out = tmp_path / "out"
    Layout(out).shard_states.mkdir(parents=True)
    Layout.marker_file(Layout(out).shard_state("train", 0)).write_text("{}")
    (out / "train").mkdir()
    spec_path = write_spec(tmp_path, tiny_spec())
    result = CliRunner().invoke(
        app, ["build", "dataset", "--spec", str(spec_path), "--out", str(out), "--executor", "local"]
    )
    assert result.exit_code == 2 and "is not a forgeset build's output" in " ".join(result.output.split())


def _tamper_keeping_stamp(tar: Path) -> None:
    """Change a tar's bytes but not its size or modification time (what only a re-hash can see)."""
    info = tar.stat()
    data = bytearray(tar.read_bytes())
    data[-1] ^= 0xFF
    tar.write_bytes(bytes(data))
    os.utime(tar, ns=(info.st_atime_ns, info.st_mtime_ns))


def test_resume_trusts_a_matching_stamp_and_verify_rehashes(tmp_path: Path, tiny_corpus: Path) -> None:
    import shutil

    from forgeset.builders.build import build_dataset
    from forgeset.builders.executors import LocalExecutor
    from forgeset.builders.spec import load_spec

    out = tmp_path / "out"
    shutil.copytree(tiny_corpus, out)
    loaded = load_spec(write_spec(tmp_path, tiny_spec()))
    tar = out / "train" / "00000.tar"
    _tamper_keeping_stamp(tar)
    trusted = build_dataset(loaded, out, executor=LocalExecutor())
    assert (trusted.built_shards, trusted.reused_shards) == (0, len(shard_hashes(tiny_corpus)))
    verified = build_dataset(loaded, out, executor=LocalExecutor(), verify=True)
    assert verified.built_shards == 1  # the tampered tar was re-hashed, found wrong and rebuilt
    assert shard_hashes(out) == shard_hashes(tiny_corpus)
    # A marker written before stamps existed is checked by hash, as --verify would.
    marker = Layout.marker_file(Layout(out).shard_state("train", 0))
    marker.write_text(json.dumps({k: v for k, v in json.loads(marker.read_text()).items() if k != "stamp"}))
    _tamper_keeping_stamp(tar)
    old_marker = build_dataset(loaded, out, executor=LocalExecutor())
    assert old_marker.built_shards == 1
    assert shard_hashes(out) == shard_hashes(tiny_corpus)


def test_a_corpus_without_fakes_warns_and_strict_refuses_it(tmp_path: Path) -> None:
    spec = tiny_spec(generate=[])
    del spec["prompts"]
    spec_path = write_spec(tmp_path, spec)
    command = ["build", "dataset", "--spec", str(spec_path), "--executor", "local"]
    built = CliRunner().invoke(app, [*command, "--out", str(tmp_path / "out")])
    assert built.exit_code == 0, built.output
    text = " ".join(built.output.split())
    assert "warning: the corpus has no fake samples: a detector cannot learn or be measured on it" in text
    refused = CliRunner().invoke(app, [*command, "--out", str(tmp_path / "strict"), "--strict"])
    assert refused.exit_code == 2
    assert "error: the corpus has no fake samples" in " ".join(refused.output.split())
    assert not list((tmp_path / "strict").glob("*/*.tar"))  # refused at planning, before any shard


def test_progress_advances_per_batch_and_the_timeline_shows_shards_and_batches(
    tmp_path: Path, build_corpus: Callable[..., Path]
) -> None:
    seen: list[tuple[int, int]] = []
    timeline = tmp_path / "timeline.json"
    out = build_corpus(
        tmp_path, tiny_spec(), progress=lambda samples, shards: seen.append((samples, shards)), timeline=timeline
    )
    shards = len(shard_hashes(out))
    assert seen[-1] == (28, shards)
    assert [samples for samples, _ in seen] == sorted(samples for samples, _ in seen)
    assert any(samples > 0 and done == 0 for samples, done in seen)  # a batch counted before any shard finished
    events = [event for event in json.loads(timeline.read_text()) if event.get("ph") == "X"]
    batches = [event for event in events if event["name"] == "batch tiny-sd"]
    assert sum(event["args"]["jobs"] for event in batches) == 12  # every fake, in planned batches
    assert len(seen) >= shards + len(batches)  # a report per batch and per shard
    names = [event["name"] for event in events]
    assert "plan" in names and "finalize" in names
    assert sorted(name for name in names if name.startswith("shard ")) == sorted(
        f"shard {p}" for p in shard_hashes(out)
    )


def test_auto_builds_small_specs_in_a_process_pool_and_large_ones_on_ray() -> None:
    from forgeset.builders.executors import LocalExecutor, ProcessExecutor, RayExecutor, choose_executor
    from forgeset.builders.spec import load_spec
    from tests.conftest import SPECS

    quickstart = load_spec(SPECS / "quickstart.yaml").spec
    assert isinstance(choose_executor(quickstart, workers=2), ProcessExecutor)
    assert isinstance(choose_executor(quickstart, workers=1), LocalExecutor)
    large = quickstart.model_copy(update={"generate": [quickstart.generate[0].model_copy(update={"count": 10_000})]})
    assert isinstance(choose_executor(large, workers=2), RayExecutor)
    assert isinstance(choose_executor(large, workers=1), LocalExecutor)  # one worker: nothing to parallelize
    assert isinstance(choose_executor(quickstart, workers=2, address="auto"), RayExecutor)  # a cluster asked for


def test_a_rerun_that_fails_before_building_keeps_the_finished_corpus(
    tmp_path: Path, tiny_corpus: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A no-op resume starts no model host; a failure at planning leaves index.json in place."""
    import shutil

    from forgeset.builders import build as build_module
    from forgeset.builders.build import build_dataset
    from forgeset.builders.executors import LocalExecutor
    from forgeset.builders.spec import SpecError, load_spec

    out = tmp_path / "out"
    shutil.copytree(tiny_corpus, out)
    loaded = load_spec(write_spec(tmp_path, tiny_spec()))
    calls: list[str] = []

    class Watched(LocalExecutor):
        def start(self, ctx: object) -> None:  # type: ignore[override]
            calls.append("start")

        def run(self, *args: object, **kwargs: object) -> None:  # type: ignore[override]
            calls.append("run")

    result = build_dataset(loaded, out, executor=Watched())
    assert calls == [] and result.built_shards == 0
    assert shard_hashes(out) == shard_hashes(tiny_corpus)

    def refuse(*args: object, **kwargs: object) -> None:
        raise SpecError("<spec>", [("real[0]", "cannot list it")])

    monkeypatch.setattr(build_module, "plan_build", refuse)
    with pytest.raises(SpecError):
        build_dataset(loaded, out, executor=LocalExecutor())
    assert (out / "index.json").read_bytes() == (tiny_corpus / "index.json").read_bytes()


def test_a_marker_naming_another_shard_or_missing_its_rows_is_not_trusted(tmp_path: Path, tiny_corpus: Path) -> None:
    import shutil

    from forgeset.builders.build import build_dataset
    from forgeset.builders.executors import LocalExecutor
    from forgeset.builders.spec import load_spec

    out = tmp_path / "out"
    shutil.copytree(tiny_corpus, out)
    loaded = load_spec(write_spec(tmp_path, tiny_spec()))
    state = Layout(out).shard_state("train", 0)
    marker = Layout.marker_file(state)
    marker.write_text(json.dumps({**json.loads(marker.read_text()), "path": "train/00001.tar"}))
    Layout.rows_file(Layout(out).shard_state("train", 1)).unlink()
    result = build_dataset(loaded, out, executor=LocalExecutor())
    assert result.built_shards == 2 and result.reused_shards == len(shard_hashes(tiny_corpus)) - 2
    assert shard_hashes(out) == shard_hashes(tiny_corpus)


def test_strict_sees_a_plan_without_reals_when_fakes_have_degraded_copies(tmp_path: Path) -> None:
    from forgeset.builders.build import _planned_classes
    from forgeset.builders.planner import plan_build
    from forgeset.builders.spec import parse_spec

    (tmp_path / "empty").mkdir()
    copies = {"name": "jpg", "target": "fake", "fraction": 1.0, "mode": "new", "ops": [{"type": "recompress"}]}
    spec = tiny_spec(real=[{"type": "folder", "path": "empty"}], perturb=[copies])
    plan = plan_build(parse_spec(spec), tmp_path)
    assert plan.total_jobs == 24
    assert _planned_classes(plan) == {"real": False, "fake": True}
