"""`forgeset verify` passes a good corpus and names the first thing wrong in a bad one."""

from __future__ import annotations

import io
import json
import shutil
import tarfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from forgeset.cli import app
from forgeset.manifests.corpus import Corpus
from forgeset.manifests.croissant import write_croissant
from forgeset.manifests.layout import Layout
from tests.conftest import rehash_index


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
    from forgeset.manifests.shard_writer import file_sha256

    def fix(index: dict) -> None:
        for entry in index["shards"]:
            if out / entry["path"] == path:
                entry["sha256"], entry["bytes"] = file_sha256(path), path.stat().st_size

    rehash_index(out, fix)


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
    assert code == 2 and "manifest.parquet: sha256 differs from index.json" in output
    rehash_index(corpus_copy)
    code, output = run_verify(corpus_copy)
    assert code == 1 and "manifest has 27 rows, index.json says 28" in output


def test_unfinished_build_is_reported(corpus_copy: Path) -> None:
    (corpus_copy / "index.json").unlink()
    code, output = run_verify(corpus_copy)
    assert code == 2 and "not a finished corpus (the build did not finish: resume it)" in output


@pytest.mark.parametrize(
    ("column", "value"),
    [("prompt", "a doctored prompt"), ("generator", "other-gen"), ("seed", 12345), ("model", "org/other")],
)
def test_an_edited_manifest_field_is_caught_with_or_without_new_hashes(
    corpus_copy: Path, column: str, value: object
) -> None:
    table = pq.read_table(Layout(corpus_copy).manifest)
    row = next(i for i, r in enumerate(table.to_pylist()) if r["label"] == "fake")
    values = table[column].to_pylist()
    values[row] = value
    field = table.schema.field(column)
    table = table.set_column(table.schema.get_field_index(column), field, pa.array(values, field.type))
    pq.write_table(table, Layout(corpus_copy).manifest)
    code, output = run_verify(corpus_copy)
    assert code == 2 and "manifest.parquet: sha256 differs from index.json" in output
    rehash_index(corpus_copy)  # the doctor also fixes every hash: the rows no longer match KEY.json
    code, output = run_verify(corpus_copy)
    # A generator edit also changes the per-generator counts, which are checked first.
    expected = "index.json: counts differ" if column == "generator" else f"json {column}="
    assert code == 1 and expected in output, output


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda i: i["counts"]["all"]["label"].update(fake=99), "index.json: counts differ from the manifest's"),
        (lambda i: i["leakage"].update(parents_across_splits=5), "index.json: leakage figures differ"),
        (lambda i: i.update(spec_sha256="0" * 64), "spec_sha256 is not the sha256 of spec.resolved.yaml"),
        (lambda i: i.update(rejects=3), "rejects.parquet has a different number of rows"),
        (lambda i: i.update(name="other"), "index.json: name differs from spec.resolved.yaml's"),
        (lambda i: i["image_policy"].update(png_compression=9), "index.json: image_policy differs"),
    ],
)
def test_an_edited_index_is_caught_even_with_a_new_self_hash(corpus_copy: Path, change, message: str) -> None:
    text = Layout(corpus_copy).index.read_text()
    Layout(corpus_copy).index.write_text(text.replace('"samples": 28', '"samples": 28 '))  # whitespace: same content
    assert run_verify(corpus_copy)[0] == 0
    index = json.loads(text)
    change(index)
    Layout(corpus_copy).index.write_text(json.dumps(index))
    code, output = run_verify(corpus_copy)
    assert code == 2 and "index_sha256: the content does not match its hash (edited)" in output
    rehash_index(corpus_copy, change)
    code, output = run_verify(corpus_copy)
    assert code == 1 and message in output, output


@pytest.mark.parametrize("name", ["spec.resolved.yaml", "rejects.parquet"])
def test_a_replaced_side_file_is_caught(corpus_copy: Path, name: str) -> None:
    path = corpus_copy / name
    path.write_bytes(path.read_bytes() + b"\n")
    code, output = run_verify(corpus_copy)
    assert code == 2 and f"{name}: sha256 differs from index.json (the file was altered)" in output


def test_an_unlisted_tar_is_reported_and_strict_fails_on_it(corpus_copy: Path) -> None:
    shutil.copy(corpus_copy / "train" / "00000.tar", corpus_copy / "train" / "00007.tar")
    (corpus_copy / "validation").mkdir()
    (corpus_copy / "validation" / "metrics.json").write_text("{}")  # another command's output: not reported
    code, output = run_verify(corpus_copy)
    assert (
        code == 0
        and "warning: 1 files under OUT are not in index.json (ignored by every reader): train/00007.tar" in output
    )
    result = CliRunner().invoke(app, ["verify", "--strict", str(corpus_copy)])
    assert result.exit_code == 1
    assert "1 files under" in " ".join(result.output.split()) and "e.g. train/00007.tar" in " ".join(
        result.output.split()
    )


@pytest.fixture
def small_workers(monkeypatch: pytest.MonkeyPatch) -> None:
    """Start worker processes for the tiny corpus too (verify otherwise checks it in one process)."""
    from forgeset.manifests import verify

    monkeypatch.setattr(verify, "MIN_BYTES_PER_WORKER", 1)


@pytest.mark.usefixtures("small_workers")
def test_parallel_verify_names_the_tar_with_a_flipped_byte(corpus_copy: Path) -> None:
    target = corpus_copy / "train" / "00002.tar"
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0x01
    target.write_bytes(bytes(data))
    result = CliRunner().invoke(app, ["verify", "--jobs", "2", str(corpus_copy)])
    output = " ".join(result.output.split())
    assert result.exit_code == 1 and "train/00002.tar: sha256 differs from index.json" in output, output


@pytest.mark.usefixtures("small_workers")
def test_parallel_verify_reports_the_first_bad_shard_in_shard_order(corpus_copy: Path) -> None:
    from forgeset.manifests.verify import CorpusInvalid, verify_corpus

    for name in ("train/00001.tar", "test/00000.tar"):
        (corpus_copy / name).write_bytes(b"\0" * 10)
    with pytest.raises(CorpusInvalid, match=r"^train/00001.tar: sha256 differs"):
        verify_corpus(corpus_copy, jobs=2)


@pytest.mark.usefixtures("small_workers")
def test_parallel_and_serial_verify_give_the_same_totals(tiny_corpus: Path) -> None:
    from forgeset.manifests.verify import verify_corpus

    seen: list[int] = []
    serial = verify_corpus(tiny_corpus, jobs=1, progress=seen.append)
    parallel = verify_corpus(tiny_corpus, jobs=2)
    assert serial == parallel
    assert serial["samples"] == sum(seen) == 28 and serial["shards"] == 6
    assert serial["bytes"] == sum(p.stat().st_size for p in tiny_corpus.glob("*/*.tar"))


@pytest.mark.usefixtures("small_workers")
def test_hash_only_checks_bytes_and_decodes_nothing(corpus_copy: Path) -> None:
    result = CliRunner().invoke(app, ["verify", "--hash-only", str(corpus_copy)])
    assert result.exit_code == 0
    assert "ok 28 samples in 6 shards; every file matches index.json (hashes only" in " ".join(result.output.split())
    target = corpus_copy / "test" / "00000.tar"
    with tarfile.open(target) as archive:
        victim = next(m.name for m in archive).split(".")[0]
    # A consistent forgery (new hashes in the index, croissant.json rewritten) that only decoding finds.
    _rewrite_tar(target, lambda name, data: None if name == f"{victim}.json" else (name, data))
    write_croissant(Corpus.open(corpus_copy), corpus_copy)
    result = CliRunner().invoke(app, ["verify", "--hash-only", "-j", "2", str(corpus_copy)])
    assert result.exit_code == 0, result.output
    code, output = run_verify(corpus_copy)
    assert code == 1 and f"test/00000.tar: sample {victim} has members" in output
    data = bytearray(target.read_bytes())
    data[100] ^= 0x01
    target.write_bytes(bytes(data))
    result = CliRunner().invoke(app, ["verify", "--hash-only", str(corpus_copy)])
    assert result.exit_code == 1 and "test/00000.tar: sha256 differs from index.json" in " ".join(result.output.split())


def test_each_vouched_file_is_hashed_once(tiny_corpus: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from forgeset.manifests import corpus as corpus_module
    from forgeset.manifests import shard_reader
    from forgeset.manifests import verify as verify_module

    hashed: list[str] = []
    real = shard_reader.file_sha256

    def counting(path: Path) -> str:
        hashed.append(path.relative_to(tiny_corpus).as_posix())
        return real(path)

    monkeypatch.setattr(corpus_module, "file_sha256", counting)
    monkeypatch.setattr(verify_module, "file_sha256", counting)
    verify_module.verify_corpus(tiny_corpus, jobs=1)
    assert sorted(hashed) == sorted(
        ["manifest.parquet", "rejects.parquet", "spec.resolved.yaml", *(p for p in _shard_paths(tiny_corpus))]
    )


def _shard_paths(out: Path) -> list[str]:
    return [p.relative_to(out).as_posix() for p in out.glob("*/*.tar")]
