"""`forgeset export`: detector folder layouts holding byte copies of the shard members."""

from __future__ import annotations

import hashlib
from collections import Counter
from pathlib import Path

import numpy as np
from typer.testing import CliRunner

from forgeset.cli import app
from tests.conftest import manifest_rows


def test_cnndetection_counts_per_folder_and_bytes(forensics_mix: Path, tmp_path: Path) -> None:
    target = tmp_path / "cnn"
    result = CliRunner().invoke(app, ["export", str(forensics_mix), str(target), "--format", "cnndetection"])
    assert result.exit_code == 0, result.output
    assert "nothing was re-encoded" in " ".join(result.output.split())
    rows = manifest_rows(forensics_mix)
    fakes = Counter((r["split"], r["generator"]) for r in rows.values() if r["label"] == "fake")
    reals = Counter(r["split"] for r in rows.values() if r["label"] == "real")
    reals["test_ood"] = reals["test"]  # held-out fakes are judged against the test reals
    for (split, generator), count in fakes.items():
        assert len(list((target / split / generator / "1_fake").iterdir())) == count
        assert len(list((target / split / generator / "0_real").iterdir())) == reals[split]
    folders = {p.parent.relative_to(target).as_posix() for p in target.rglob("*.png")}
    assert folders == {f"{s}/{g}/1_fake" for s, g in fakes} | {f"{s}/{g}/0_real" for s, g in fakes}
    for path in target.rglob("*.png"):
        assert hashlib.sha256(path.read_bytes()).hexdigest() == rows[path.stem]["sha256"]


def test_imagefolder_loads_with_datasets_and_carries_masks(forensics_mix: Path, tmp_path: Path) -> None:
    import datasets

    target = tmp_path / "imagefolder"
    assert (
        CliRunner().invoke(app, ["export", str(forensics_mix), str(target), "--format", "imagefolder"]).exit_code == 0
    )
    rows = manifest_rows(forensics_mix)
    loaded = datasets.load_dataset("imagefolder", data_dir=str(target), cache_dir=str(tmp_path / "hf"))
    assert sum(len(d) for d in loaded.values()) == len(rows)
    for example in loaded["train"].select(range(20)):
        row = rows[example["key"]]
        assert (example["label"], example["kind"], example["parent_key"]) == (
            row["label"],
            row["kind"],
            row["parent_key"] or "",  # typed as in KEY.json: "" where not applicable
        )
    inpainted = [key for key, row in rows.items() if row["kind"] == "inpaint"]
    assert all((target / rows[key]["split"] / "masks" / f"{key}.png").exists() for key in inpainted)
    masks = {e["key"]: e["mask"] for e in loaded["train"] if e["kind"] in ("inpaint", "real")}
    assert any(np.asarray(m).max() == 255 for k, m in masks.items() if rows[k]["kind"] == "inpaint")
    assert all(np.asarray(m).max() == 0 for k, m in masks.items() if rows[k]["kind"] == "real")


def test_export_refuses_unknown_format_and_non_empty_target(tiny_corpus: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["export", str(tiny_corpus), str(tmp_path / "x"), "--format", "coco"])
    assert result.exit_code == 2 and "--format must be one of cnndetection, imagefolder" in result.output
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    result = CliRunner().invoke(app, ["export", str(tiny_corpus), str(tmp_path / "full")])
    assert result.exit_code == 2 and "is not empty" in result.output
