"""`forgeset inspect` audits per label and says loudly when a class has no samples."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pyarrow.parquet as pq
from typer.testing import CliRunner

from forgeset.cli import app
from forgeset.manifests.audit import audit_corpus, missing_classes
from forgeset.manifests.layout import Layout
from tests.conftest import tiny_spec


def test_audit_matches_the_manifest(tiny_corpus: Path) -> None:
    rows = pq.read_table(Layout(tiny_corpus).manifest).to_pylist()
    report = audit_corpus(tiny_corpus)
    for label in ("real", "fake"):
        mine = [r for r in rows if r["label"] == label]
        facts = report["audit"][label]
        assert facts["count"] == len(mine)
        assert sum(facts["formats"].values()) == len(mine)
        assert facts["width"] == [min(r["width"] for r in mine), max(r["width"] for r in mine)]
    assert report["missing_classes"] == missing_classes(report["counts"])


def test_missing_classes_per_split_and_overall() -> None:
    counts = {
        "all": {"label": {"real": 3}},
        "splits": {"train": {"label": {"real": 2, "fake": 0}}, "test": {"label": {"real": 1}}},
    }
    assert missing_classes(counts) == {"train": ["fake"], "test": ["fake"], "all": ["fake"]}
    assert missing_classes({"all": {"label": {"real": 1, "fake": 1}}, "splits": {}}) == {}
    # test_ood holds only held-out fakes by design (its reals are test's): not a missing class.
    ood = {"all": {"label": {"real": 1, "fake": 2}}, "splits": {"test_ood": {"label": {"fake": 1}}}}
    assert missing_classes(ood) == {}
    assert missing_classes({**ood, "splits": {"test_ood": {"label": {}}}}) == {"test_ood": ["fake"]}


def test_inspect_says_a_class_has_no_samples(tmp_path: Path, build_corpus: Callable[..., Path]) -> None:
    spec = tiny_spec(generate=[])
    spec.pop("prompts")
    out = build_corpus(tmp_path, spec)
    result = CliRunner().invoke(app, ["inspect", str(out)])
    text = " ".join(result.output.split())
    assert result.exit_code == 0, text
    assert "warning: the corpus has no fake samples" in text
    assert "warning: split train has no fake samples" in text
    result = CliRunner().invoke(app, ["inspect", "--json", str(out)])
    report = json.loads(result.stdout[result.stdout.index("{") :])
    assert report["missing_classes"]["all"] == ["fake"]
