"""`forgeset verify` passes a good corpus and names the first thing wrong in a bad one."""

from __future__ import annotations

import io
import json
import shutil
import tarfile
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from forgeset.cli import app


@pytest.fixture
def corpus_copy(tmp_path: Path, tiny_corpus: Path) -> Path:
    out = tmp_path / "copy"
    shutil.copytree(tiny_corpus, out)
    return out


def run_verify(out: Path) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["verify", str(out)])
    return result.exit_code, " ".join(result.output.split())


def test_good_corpus_verifies(tiny_corpus: Path) -> None:
    code, output = run_verify(tiny_corpus)
    assert code == 0, output
    assert "ok 28 samples in 6 shards" in output


def test_one_flipped_byte_names_its_tar(corpus_copy: Path) -> None:
    target = corpus_copy / "val" / "00000.tar"
    data = bytearray(target.read_bytes())
    data[700] ^= 0x01
    target.write_bytes(bytes(data))
    code, output = run_verify(corpus_copy)
    assert code == 1
    assert "val/00000.tar: sha256 differs from index.json" in output


def test_missing_shard_is_named(corpus_copy: Path) -> None:
    (corpus_copy / "train" / "00001.tar").unlink()
    code, output = run_verify(corpus_copy)
    assert code == 1 and "train/00001.tar: shard is missing" in output


def _rewrite_tar(path: Path, change) -> None:
    """Rebuild a tar with `change(name, bytes) -> (name, bytes) | None`, then fix the index hash."""
    members = []
    with tarfile.open(path) as archive:
        for member in archive:
            changed = change(member.name, archive.extractfile(member).read())
            if changed:
                members.append(changed)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    path.write_bytes(buffer.getvalue())
    out = path.parent.parent
    index = json.loads((out / "index.json").read_text())
    from forgeset.manifests.shard_writer import file_sha256

    for entry in index["shards"]:
        if out / entry["path"] == path:
            entry["sha256"], entry["bytes"] = file_sha256(path), path.stat().st_size
    (out / "index.json").write_text(json.dumps(index))


def test_manifest_and_tar_disagreeing_on_label_is_named(corpus_copy: Path) -> None:
    target = corpus_copy / "train" / "00000.tar"
    with tarfile.open(target) as archive:
        victim = next(m.name for m in archive if m.name.endswith(".cls")).split(".")[0]

    def flip_label(name: str, data: bytes) -> tuple[str, bytes]:
        if name == f"{victim}.cls":
            return name, b"1" if data == b"0" else b"0"
        return name, data

    _rewrite_tar(target, flip_label)
    code, output = run_verify(corpus_copy)
    assert code == 1
    assert f"train/00000.tar: sample {victim}: cls" in output and "does not match label" in output


def test_sample_missing_a_member_is_named(corpus_copy: Path) -> None:
    target = corpus_copy / "test" / "00000.tar"
    with tarfile.open(target) as archive:
        victim = next(m.name for m in archive).split(".")[0]
    _rewrite_tar(target, lambda name, data: None if name == f"{victim}.json" else (name, data))
    code, output = run_verify(corpus_copy)
    assert code == 1
    assert f"test/00000.tar: sample {victim} has members ['cls', 'png'], expected ['cls', 'json', 'png']" in output


def test_manifest_row_without_a_sample_is_caught(corpus_copy: Path) -> None:
    table = pq.read_table(corpus_copy / "manifest.parquet")
    pq.write_table(table.slice(1), corpus_copy / "manifest.parquet")
    code, output = run_verify(corpus_copy)
    assert code == 1 and "manifest has 27 rows, index.json says 28" in output


def test_unfinished_build_is_reported(corpus_copy: Path) -> None:
    (corpus_copy / "index.json").unlink()
    code, output = run_verify(corpus_copy)
    assert code == 1 and "the build did not finish" in output
