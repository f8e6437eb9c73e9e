"""Building, resuming and verifying a corpus on object storage (moto's S3 server on 127.0.0.1).

A corpus built to s3:// holds the same bytes as the local build of the same spec; verify reads it
over S3 and catches one flipped byte; a build killed mid-write resumes on S3 to the same bytes;
a resume trusts the stamps of one listing unless --verify.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from forgeset.builders.build import OutputConflict, build_dataset
from forgeset.builders.build_lock import BuildLock
from forgeset.builders.executors import LocalExecutor
from forgeset.builders.spec import load_spec
from forgeset.cli import app
from forgeset.core.faults import FAULT_ENV
from forgeset.manifests.layout import STATE_DIR
from forgeset.manifests.storage import TMP_SUFFIX, Storage
from forgeset.manifests.verify import verify_corpus
from tests.conftest import ALL_PHOTOS, tiny_spec, write_spec

REALS_ONLY = {
    "name": "reals",
    "seed": 3,
    "image": {"size": 32},
    "shards": {"size": 3, "min_per_split": 1},
    "real": [{"type": "bundled", "tile": 64, "max_tiles": 2, "photos": ALL_PHOTOS}],
}


def corpus_files(out: Path) -> dict[str, bytes]:
    """Every file of a local corpus but the build state, by relative name."""
    return {
        path.relative_to(out).as_posix(): path.read_bytes()
        for path in sorted(out.rglob("*"))
        if path.is_file() and path.relative_to(out).parts[0] != STATE_DIR
    }


def assert_same_corpus(url: str, reference: Path) -> None:
    """The corpus at `url` holds exactly the reference's files, byte for byte, and no temporary key."""
    storage = Storage(url)
    names = storage.list()
    assert not [name for name in names if name.endswith(TMP_SUFFIX)]
    expected = corpus_files(reference)
    assert [name for name in names if not name.startswith(STATE_DIR + "/")] == sorted(expected)
    for name, data in expected.items():
        assert storage.read_bytes(name) == data, name


def _build(spec_path: Path, out: str | Path, **kwargs: Any) -> Any:
    return build_dataset(load_spec(spec_path), out, executor=LocalExecutor(), **kwargs)


def _cli(spec_path: Path, out: str, *extra: str) -> list[str]:
    return [sys.executable, "-m", "forgeset.cli", "build", "dataset", "--spec", str(spec_path), "--out", out, *extra]


@pytest.fixture
def prefix(s3_server: str) -> Iterator[str]:
    """A fresh prefix of the test bucket."""
    yield f"{s3_server}/corpus-{uuid.uuid4().hex[:12]}"


@pytest.fixture(scope="module")
def s3_tiny(s3_server: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    """tiny_spec built to S3 (local executor), once for this module."""
    url = f"{s3_server}/tiny-{uuid.uuid4().hex[:12]}"
    _build(write_spec(tmp_path_factory.mktemp("s3-tiny"), tiny_spec()), url)
    return url


@pytest.fixture(scope="module")
def reals_reference(tmp_path_factory: pytest.TempPathFactory, build_corpus: Callable[..., Path]) -> Path:
    return build_corpus(tmp_path_factory.mktemp("reals"), REALS_ONLY)


def test_a_build_to_s3_equals_the_local_build_byte_for_byte(s3_tiny: str, tiny_corpus: Path) -> None:
    assert_same_corpus(s3_tiny, tiny_corpus)
    assert Storage(s3_tiny).read_bytes("index.json") == (tiny_corpus / "index.json").read_bytes()


def test_verify_passes_on_s3_and_names_a_shard_with_one_flipped_byte(s3_tiny: str, prefix: str) -> None:
    runner = CliRunner()
    passed = runner.invoke(app, ["verify", s3_tiny])
    assert passed.exit_code == 0, passed.output
    assert "ok 28 samples in 6 shards" in passed.output
    storage = Storage(s3_tiny)
    storage.fs.copy(storage.root_path, Storage(prefix).root_path, recursive=True)
    copy = Storage(prefix)
    shard = next(name for name in copy.list() if name.endswith(".tar"))
    data = bytearray(copy.read_bytes(shard))
    data[len(data) // 2] ^= 0x01
    copy.fs.pipe_file(f"{copy.root_path}/{shard}", bytes(data))
    failed = runner.invoke(app, ["verify", prefix])
    assert failed.exit_code == 1
    assert f"{shard}: sha256 differs from index.json (the shard was altered)" in " ".join(failed.output.split())


@pytest.mark.parametrize("point", ["object-uploaded:5", "marker-written:2", "manifest-written:1"])
def test_a_build_killed_on_s3_resumes_to_the_same_bytes(
    point: str, prefix: str, tmp_path: Path, reals_reference: Path
) -> None:
    spec_path = write_spec(tmp_path, REALS_ONLY)
    killed = subprocess.run(
        _cli(spec_path, prefix, "--executor", "local"), env={**os.environ, FAULT_ENV: point}, capture_output=True
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr.decode()
    assert not Storage(prefix).exists("index.json")
    unfinished = CliRunner().invoke(app, ["verify", prefix])
    assert unfinished.exit_code == 2
    assert f"{prefix}: not a finished corpus (the build did not finish: resume it)" in unfinished.output
    resumed = subprocess.run(_cli(spec_path, prefix, "--executor", "local"), capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert_same_corpus(prefix, reals_reference)
    assert verify_corpus(prefix)["samples"] == 16


def test_a_resume_on_s3_trusts_stamps_unless_verify(
    prefix: str, tmp_path: Path, reals_reference: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec_path = write_spec(tmp_path, REALS_ONLY)
    _build(spec_path, prefix)
    hashed: list[str] = []
    original = Storage.sha256

    def counted(self: Storage, *parts: str) -> str:
        hashed.append("/".join(parts))
        return original(self, *parts)

    monkeypatch.setattr(Storage, "sha256", counted)
    result = _build(spec_path, prefix)
    assert (result.built_shards, result.reused_shards) == (0, 6)
    assert not [name for name in hashed if name.endswith(".tar")]  # trusted: size and ETag from one listing
    result = _build(spec_path, prefix, verify=True)
    assert (result.built_shards, result.reused_shards) == (0, 6)
    assert sorted(name for name in hashed if name.endswith(".tar")) == sorted(_corpus_tars(reals_reference))
    assert_same_corpus(prefix, reals_reference)


def _corpus_tars(out: Path) -> list[str]:
    return [name for name in corpus_files(out) if name.endswith(".tar")]


def test_a_changed_shard_object_is_rebuilt_on_resume(prefix: str, tmp_path: Path, reals_reference: Path) -> None:
    spec_path = write_spec(tmp_path, REALS_ONLY)
    _build(spec_path, prefix)
    storage = Storage(prefix)
    shard = _corpus_tars(reals_reference)[0]
    storage.fs.pipe_file(f"{storage.root_path}/{shard}", b"not the shard")  # a new ETag and size
    result = _build(spec_path, prefix)
    assert (result.built_shards, result.reused_shards) == (1, 5)
    assert_same_corpus(prefix, reals_reference)


def test_a_second_build_into_the_same_url_is_refused_naming_it(prefix: str, tmp_path: Path) -> None:
    spec_path = write_spec(tmp_path, REALS_ONLY)
    lock = BuildLock.acquire(BuildLock.path_for(Storage(prefix)), target=prefix)
    try:
        with pytest.raises(OutputConflict, match=f"another build \\(PID {os.getpid()}\\) is writing to {prefix};"):
            _build(spec_path, prefix)
    finally:
        lock.release()
    assert Storage(prefix).list() == []  # refused before anything was written


def test_a_prefix_holding_other_objects_is_refused(prefix: str, tmp_path: Path) -> None:
    Storage(prefix).publish_bytes(b"mine", "notes.txt")
    with pytest.raises(OutputConflict, match="is not a forgeset build's output"):
        _build(write_spec(tmp_path, REALS_ONLY), prefix)
    assert Storage(prefix).list() == ["notes.txt"]
