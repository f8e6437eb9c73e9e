"""The command line: inspect's counts and audit, and a fast --help."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from forgeset.cli import app


def test_inspect_json_has_counts_and_per_label_audit(tiny_corpus: Path) -> None:
    result = CliRunner().invoke(app, ["inspect", str(tiny_corpus), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["counts"]["all"]["generator"] == {"(real)": 16, "tiny-sd": 12}
    assert set(report["audit"]) == {"real", "fake"}
    for facts in report["audit"].values():
        assert facts["formats"] == {"png q1": facts["count"]}
        assert facts["width"] == [32, 32] and facts["height"] == [32, 32]
        assert facts["file_bytes"]["p5"] <= facts["file_bytes"]["p50"] <= facts["file_bytes"]["p95"]
    assert report["audit"]["real"]["count"] == 16 and report["rejects"] == {}


def test_inspect_tables_show_splits_and_audit(tiny_corpus: Path) -> None:
    result = CliRunner().invoke(app, ["inspect", str(tiny_corpus)])
    assert result.exit_code == 0
    for text in ("tiny: 28 samples", "fake 12, real 16", "png q1: 16", "32..32"):
        assert text in result.stdout


def test_inspect_of_a_folder_that_is_not_a_corpus(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["inspect", str(tmp_path)])
    assert result.exit_code == 2 and "not a finished corpus" in result.output


def test_help_imports_no_heavy_library() -> None:
    code = (
        "import sys; from forgeset.cli import app; "
        "print(sorted(m for m in ('torch', 'ray', 'diffusers', 'datasets') if m in sys.modules))"
    )
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert output.strip() == "[]"


def test_inspect_reports_leakage_and_the_bias_probe(tiny_corpus: Path) -> None:
    result = CliRunner().invoke(app, ["inspect", str(tiny_corpus)])
    text = " ".join(result.stdout.split())
    assert "leakage: 0 samples with a parent in another split, 0 identical images in more than one split" in text
    assert "bias probe (metadata only): AUC" in text and "format 0.50" in text
