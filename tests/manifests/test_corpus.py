"""Corpus.open validates what it reads, and every command refuses a doctored corpus before writing."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from forgeset.cli import app
from forgeset.manifests.corpus import Corpus, CorpusError
from forgeset.manifests.layout import Layout
from tests.conftest import rehash_index


def _set_manifest(out: Path, column: str, value: str) -> None:
    """Set `column` of the first row whose column is not null (so a fake for `generator`)."""
    path = Layout(out).manifest
    table = pq.read_table(path)
    values = table[column].to_pylist()
    row = next(i for i, v in enumerate(values) if v is not None)
    values[row] = value
    index = table.schema.get_field_index(column)
    pq.write_table(table.set_column(index, table.schema.field(column), pa.array(values, pa.string())), path)
    rehash_index(out)  # "consistent hashes": the doctor recomputes them


def _null_generator(out: Path) -> None:
    path = Layout(out).manifest
    table = pq.read_table(path)
    values = [None] * table.num_rows
    index = table.schema.get_field_index("generator")
    pq.write_table(table.set_column(index, table.schema.field("generator"), pa.array(values, pa.string())), path)
    rehash_index(out)


def _set_index(out: Path, change: Callable[[dict[str, Any]], None]) -> None:
    rehash_index(out, change)


DOCTORED: dict[str, tuple[Callable[[Path], None], str]] = {
    "absolute key": (lambda out: _set_manifest(out, "key", "/tmp/forgeset-escape"), "column key"),
    "generator with ..": (lambda out: _set_manifest(out, "generator", "../../escape"), "column generator"),
    "split that is a path": (lambda out: _set_manifest(out, "split", "train/../../escape"), "column split"),
    "parent that is a path": (lambda out: _set_manifest(out, "group", "a/../b"), "column group"),
    "source name that is a path": (lambda out: _set_manifest(out, "source", "../x:ref"), "column source"),
    "shard path outside": (
        lambda out: _set_index(out, lambda i: i["shards"][0].update(path="../../escape.tar")),
        "field shards.0",
    ),
    "shard of an unknown split": (
        lambda out: _set_index(out, lambda i: i["shards"][0].update(split="escape", path="escape/00000.tar")),
        "field shards.0",
    ),
    "fake without a generator": (lambda out: _null_generator(out), "column generator"),
    "row in another split's shard": (lambda out: _set_manifest(out, "split", "val"), "column split"),
    "corpus name that is a path": (lambda out: _set_index(out, lambda i: i.update(name="../x")), "field name"),
    "index not JSON": (lambda out: Layout(out).index.write_bytes(b"\xff\xfe{"), "not readable JSON"),
    "index truncated": (
        lambda out: Layout(out).index.write_bytes(Layout(out).index.read_bytes()[:100]),
        "not readable JSON",
    ),
    "index a list": (lambda out: Layout(out).index.write_text("[1, 2]"), "field (top level)"),
    "index field missing": (lambda out: _set_index(out, lambda i: i.pop("shards")), "field shards"),
    "index edited, hash kept": (
        lambda out: Layout(out).index.write_text(
            Layout(out).index.read_text().replace('"samples": 28', '"samples": 27')
        ),
        "field index_sha256",
    ),
    "manifest edited, hash kept": (
        lambda out: Layout(out).manifest.write_bytes(Layout(out).manifest.read_bytes()[:-9] + b"\x00" * 9),
        "sha256 differs from index.json",
    ),
    "manifest not parquet": (
        lambda out: (Layout(out).manifest.write_bytes(b"PAR1 nope"), rehash_index(out)),
        "not a readable parquet",
    ),
    "manifest column missing": (
        lambda out: (
            pq.write_table(pq.read_table(Layout(out).manifest).drop(["seed"]), Layout(out).manifest),
            rehash_index(out),
        ),
        "column seed is missing",
    ),
}


@pytest.fixture
def corpus_copy(tiny_corpus: Path, tmp_path: Path) -> Path:
    out = tmp_path / "corpus"
    shutil.copytree(tiny_corpus, out)
    return out


def test_a_built_corpus_opens_with_typed_access(tiny_corpus: Path) -> None:
    corpus = Corpus.open(tiny_corpus)
    assert corpus.name == "tiny" and corpus.policy.size == 32 and not corpus.localized
    assert sum(shard.count for shard in corpus.shards()) == len(corpus.rows) == 28
    train = list(corpus.iter_samples("train"))
    expected = [
        key
        for shard in corpus.shards("train")
        for key in sorted(r["key"] for r in corpus.rows if r["shard"] == shard.path)
    ]
    assert [s.key for s in train] == expected  # shard by shard, key order within a shard
    assert all(set(s.members) == {"png", "json", "cls"} and s.row["split"] == "train" for s in train)


@pytest.mark.parametrize("case", sorted(DOCTORED))
def test_doctored_corpus_is_refused_naming_file_and_field(corpus_copy: Path, case: str) -> None:
    doctor, field = DOCTORED[case]
    doctor(corpus_copy)
    with pytest.raises(CorpusError) as caught:
        Corpus.open(corpus_copy)
    message = str(caught.value)
    assert field in message and ("index.json" in message or "manifest.parquet" in message), message
    assert "\n" not in message  # one line


def _files(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*")}


@pytest.mark.parametrize("case", ["absolute key", "generator with ..", "split that is a path", "shard path outside"])
def test_every_command_refuses_a_doctored_corpus_before_writing(corpus_copy: Path, tmp_path: Path, case: str) -> None:
    DOCTORED[case][0](corpus_copy)
    pq.write_table(  # a curation decision, so that `filter` gets as far as reading the corpus
        pa.table({"key": ["x"], "decision": ["exclude"], "tag": ["exclude"], "time": ["t"]}),
        Layout(corpus_copy).curation,
    )
    before = _files(tmp_path)
    target = tmp_path / "target"
    commands = [
        ["verify", str(corpus_copy)],
        ["inspect", str(corpus_copy)],
        ["export", str(corpus_copy), str(target)],
        ["export", str(corpus_copy), str(target), "--format", "imagefolder"],
        ["publish", str(corpus_copy), "--repo-id", "org/x", "--dry-run", str(target)],
        ["filter", str(corpus_copy), "--out", str(target)],
        ["validate", str(corpus_copy), "--detectors", "spectrum"],
        ["curate", str(corpus_copy), "--media", str(target)],
    ]
    for command in commands:
        result = CliRunner().invoke(app, command)
        assert result.exit_code == 2, (command, result.output)
        assert "Traceback" not in result.output
        assert _files(tmp_path) == before, command
    assert not Path("/tmp/forgeset-escape").exists()


def test_readers_ignore_a_shard_the_index_does_not_list(corpus_copy: Path, tmp_path: Path) -> None:
    shutil.copy(corpus_copy / "train" / "00000.tar", corpus_copy / "train" / "00099.tar")
    corpus = Corpus.open(corpus_copy)
    assert "train/00099.tar" not in {s.shard for s in corpus.iter_samples()}
    result = CliRunner().invoke(app, ["export", str(corpus_copy), str(tmp_path / "export")])
    assert result.exit_code == 0, result.output
    assert sum(1 for _ in (tmp_path / "export").rglob("*.png")) >= 28


def test_a_member_under_an_unknown_key_is_refused(corpus_copy: Path) -> None:
    import io
    import tarfile

    path = corpus_copy / "train" / "00000.tar"
    with tarfile.open(path, "a") as archive:
        info = tarfile.TarInfo("escape-key.png")
        info.size = 3
        archive.addfile(info, io.BytesIO(b"png"))
    corpus = Corpus.open(corpus_copy)  # the index is not re-hashed on open: the reader catches it
    with pytest.raises(CorpusError, match="not in the manifest under this shard"):
        list(corpus.iter_samples("train"))
    assert pc.sum(pc.equal(corpus.table["split"], "train")).as_py() > 0
