"""croissant.json: mlcroissant validates it and reads the manifest's records through it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from forgeset.manifests.corpus import Corpus
from forgeset.manifests.croissant import RECORD_SET, write_croissant
from forgeset.manifests.schema import MANIFEST_SCHEMA
from tests.conftest import manifest_rows


def test_croissant_validates_and_yields_every_manifest_row(tiny_corpus: Path, tmp_path: Path) -> None:
    import mlcroissant as mlc

    out = tmp_path / "corpus"
    shutil.copytree(tiny_corpus, out)
    path = write_croissant(Corpus.open(out), out, url="https://huggingface.co/datasets/forensics/tiny")
    assert path == out / "croissant.json"
    dataset = mlc.Dataset(jsonld=str(path))  # raises ValidationError on any error
    assert not dataset.metadata.issues.errors
    rows = manifest_rows(out)
    records = list(dataset.records(RECORD_SET))
    assert len(records) == len(rows)
    for record in records:
        row = rows[record[f"{RECORD_SET}/key"].decode()]
        assert record[f"{RECORD_SET}/label"].decode() == row["label"]
        assert record[f"{RECORD_SET}/sha256"].decode() == row["sha256"]
        assert record[f"{RECORD_SET}/width"] == row["width"]
    data = json.loads(path.read_text())
    assert [f["name"] for f in data["recordSet"][0]["field"]] == MANIFEST_SCHEMA.names
    index = json.loads((out / "index.json").read_text())
    shards = {f["contentUrl"]: f["sha256"] for f in data["distribution"] if f["encodingFormat"] == "application/x-tar"}
    assert shards == {s["path"]: s["sha256"] for s in index["shards"]}


def test_a_build_writes_croissant_json_and_verify_checks_it(tiny_corpus: Path, tmp_path: Path) -> None:
    import mlcroissant as mlc
    from typer.testing import CliRunner

    from forgeset.cli import app
    from forgeset.manifests.croissant import croissant_bytes

    path = tiny_corpus / "croissant.json"
    assert path.read_bytes() == croissant_bytes(Corpus.open(tiny_corpus))
    assert len(list(mlc.Dataset(jsonld=str(path)).records(RECORD_SET))) == 28
    out = tmp_path / "corpus"
    shutil.copytree(tiny_corpus, out)
    doctored = json.loads((out / "croissant.json").read_text())
    doctored["name"] = "something-else"
    (out / "croissant.json").write_text(json.dumps(doctored, indent=2))
    result = CliRunner().invoke(app, ["verify", str(out)])
    assert result.exit_code == 1 and "croissant.json differs from the metadata of this corpus" in result.output
