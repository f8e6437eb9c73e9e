"""Interruption and faults: Ctrl-C and SIGTERM keep finished shards, one build per OUT, SIGKILL anywhere resumes.

Every test here runs the real CLI in a subprocess and compares the result with an uninterrupted
build of the same spec, byte for byte.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from forgeset.builders.build_lock import BuildLock
from forgeset.core.faults import FAULT_ENV
from forgeset.manifests.layout import Layout
from tests.conftest import ALL_PHOTOS, manifest_rows, tiny_spec, write_spec

REALS_ONLY = {
    "name": "reals",
    "seed": 3,
    "image": {"size": 32},
    "shards": {"size": 3, "min_per_split": 1},
    "real": [{"type": "bundled", "tile": 64, "max_tiles": 2, "photos": ALL_PHOTOS}],
}


def _cli(spec_path: Path, out: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "forgeset.cli",
        "build",
        "dataset",
        "--spec",
        str(spec_path),
        "--out",
        str(out),
        *extra,
    ]


def _hashes(out: Path) -> dict[str, str]:
    return {s["path"]: s["sha256"] for s in json.loads(Layout(out).index.read_text())["shards"]}


def _same_corpus(out: Path, reference: Path) -> None:
    assert _hashes(out) == _hashes(reference)
    assert Layout(out).manifest.read_bytes() == Layout(reference).manifest.read_bytes()
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]
    keys = list(manifest_rows(out))
    assert len(keys) == len(set(keys))


def _wait_for(condition: Callable[[], bool], seconds: float, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert process.poll() is None, process.stderr.read().decode() if process.stderr else ""
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


@pytest.fixture(scope="module")
def reals_reference(tmp_path_factory: pytest.TempPathFactory, build_corpus: Callable[..., Path]) -> Path:
    return build_corpus(tmp_path_factory.mktemp("reals"), REALS_ONLY)


@pytest.mark.parametrize(("executor", "sig", "code"), [("ray", signal.SIGINT, 130), ("local", signal.SIGTERM, 143)])
def test_a_signal_keeps_finished_shards_and_prints_the_resume_command(
    tmp_path: Path, tiny_corpus: Path, executor: str, sig: int, code: int
) -> None:
    spec_path = write_spec(tmp_path, tiny_spec())
    out = tmp_path / "out"
    command = _cli(spec_path, out, "--executor", executor, "--workers", "1")
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    markers = Layout(out).shard_states
    _wait_for(lambda: any(markers.glob("*.done.json")), 240, process)
    process.send_signal(sig)
    stdout, stderr = process.communicate(timeout=180)
    text = " ".join((stdout + stderr).decode().split())
    assert process.returncode == code, text
    kept, total = len(list(markers.glob("*.done.json"))), len(_hashes(tiny_corpus))
    assert f"interrupted: {kept} of {total} shards are finished and kept" in text
    assert f"resume with: forgeset build dataset --spec {spec_path} --out {out}" in text
    assert not Layout(out).index.exists() and 1 <= kept < total
    resumed = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert f"{kept} reused" in " ".join(resumed.stderr.split())
    _same_corpus(out, tiny_corpus)


def test_a_second_build_into_the_same_out_is_refused_naming_the_first(tmp_path: Path) -> None:
    spec_path = write_spec(tmp_path, REALS_ONLY)
    out = tmp_path / "out"
    lock = BuildLock.acquire(Layout(out).build_lock)  # as a running build holds it
    try:
        refused = subprocess.run(
            _cli(spec_path, out, "--executor", "local"), capture_output=True, text=True, timeout=120
        )
    finally:
        lock.release()
    assert refused.returncode == 2
    assert f"another build (PID {os.getpid()}) is writing to {out}" in " ".join(refused.stderr.split())
    assert sorted(p.name for p in out.rglob("*")) == [".forgeset", "build.lock"]  # nothing else written
    built = subprocess.run(_cli(spec_path, out, "--executor", "local"), capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stderr


# (point, how many times it is reached in an uninterrupted build of REALS_ONLY: 16 samples, 6 shards)
REACHED = {
    "tar-member": 16,
    "tar-written": 6,
    "rows-written": 6,
    "marker-written": 6,
    "manifest-written": 1,
    "index-written": 1,
}


def _schedule(seed: int, size: int) -> list[tuple[str, int]]:
    """Every point once, then seeded random points and occurrences until `size` kills."""
    rng = random.Random(seed)
    points = [(point, rng.randint(1, reached)) for point, reached in REACHED.items()]
    while len(points) < size:
        point = rng.choice(sorted(REACHED))
        points.append((point, rng.randint(1, REACHED[point])))
    return points


def test_sigkill_at_seeded_points_then_resume_gives_the_uninterrupted_corpus(
    tmp_path: Path, reals_reference: Path
) -> None:
    spec_path = write_spec(tmp_path, REALS_ONLY)
    for number, (point, occurrence) in enumerate(_schedule(seed=2026, size=10)):
        out = tmp_path / f"out{number}"
        env = {**os.environ, FAULT_ENV: f"{point}:{occurrence}"}
        killed = subprocess.run(_cli(spec_path, out, "--executor", "local"), env=env, capture_output=True, timeout=300)
        assert killed.returncode == -signal.SIGKILL, (point, occurrence, killed.stderr.decode())
        resumed = subprocess.run(
            _cli(spec_path, out, "--executor", "local"), capture_output=True, text=True, timeout=300
        )
        assert resumed.returncode == 0, (point, occurrence, resumed.stderr)
        _same_corpus(out, reals_reference)


def test_a_model_actor_killed_mid_build_is_restarted_and_the_bytes_do_not_change(
    tmp_path: Path, tiny_corpus: Path
) -> None:
    spec_path = write_spec(tmp_path, tiny_spec())
    once = tmp_path / "killed-once"
    env = {**os.environ, FAULT_ENV: f"stage-batch:2:{once}"}  # the actor dies on its second batch, once
    out = tmp_path / "out"
    command = _cli(spec_path, out, "--workers", "1", "--executor", "ray")
    built = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stderr
    assert once.exists()  # the kill happened
    _same_corpus(out, tiny_corpus)


def test_a_file_size_limit_is_one_clear_error_and_the_build_resumes(tmp_path: Path, reals_reference: Path) -> None:
    import resource

    spec_path = write_spec(tmp_path, REALS_ONLY)
    out = tmp_path / "out"

    def limit_files() -> None:  # as `ulimit -f`: no file may grow past 6000 bytes
        resource.setrlimit(resource.RLIMIT_FSIZE, (6000, 6000))

    limited = subprocess.run(
        _cli(spec_path, out, "--executor", "local"), capture_output=True, text=True, timeout=300, preexec_fn=limit_files
    )
    text = " ".join(limited.stderr.split())
    assert limited.returncode == 1, text
    assert "error: cannot write" in text and "File too large; free space or raise the limit" in text
    assert "Traceback" not in text
    resumed = subprocess.run(_cli(spec_path, out, "--executor", "local"), capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    _same_corpus(out, reals_reference)
