"""The FiftyOne round trip: import, brain views, tags -> curation.parquet -> a filtered corpus."""

from __future__ import annotations

import io
import json
import shutil
import tarfile
from collections.abc import Callable
from pathlib import Path

import fiftyone as fo
import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image
from typer.testing import CliRunner

from forgeset.annotate.curation import filter_corpus, import_corpus, sync_curation
from forgeset.cli import app
from tests.conftest import chromium_flags, manifest_rows, tiny_spec


@pytest.fixture
def corpus(tiny_corpus: Path, tmp_path: Path) -> Path:
    out = tmp_path / "corpus"
    shutil.copytree(tiny_corpus, out)
    return out


def test_import_matches_the_manifest_and_reimport_does_not_duplicate(corpus: Path) -> None:
    result = CliRunner().invoke(app, ["curate", str(corpus), "--name", "t-import"])
    assert result.exit_code == 0, result.output
    dataset = fo.load_dataset("t-import")
    rows = manifest_rows(corpus)
    assert len(dataset) == len(rows) == 28
    for key, label, split, tags in zip(
        dataset.values("key"),
        dataset.values("ground_truth.label"),
        dataset.values("split"),
        dataset.values("tags"),
        strict=True,
    ):
        assert (label, split) == (rows[key]["label"], rows[key]["split"]) and tags == [split]
    assert set(dataset.list_saved_views()) >= {
        "near-duplicates",
        "cross-split-leaks",
        "embedding-leaks",
        "exact-duplicates",
    }
    assert dataset.info["embeddings"] == "16x16 grey thumbnails"  # no validate run on this corpus
    assert "thumbnails" in dataset.list_brain_runs() and dataset.has_field("uniqueness")
    assert CliRunner().invoke(app, ["curate", str(corpus), "--name", "t-import"]).exit_code == 0
    assert len(fo.load_dataset("t-import")) == 28


def test_masks_and_detector_predictions_are_imported(forensics_mix: Path, validated_mix: dict, tmp_path: Path) -> None:
    out = tmp_path / "mix"
    shutil.copytree(forensics_mix, out, ignore=shutil.ignore_patterns("media"))
    dataset = import_corpus(out, "t-mix")
    rows = manifest_rows(out)
    with tarfile.open(sorted(out.glob("train/*.tar"))[0]) as archive:
        masks = {m.name.split(".")[0]: archive.extractfile(m).read() for m in archive if m.name.endswith(".mask.png")}
    key = next(k for k in masks if rows[k]["kind"] == "inpaint")
    sample = dataset.match(fo.ViewField("key") == key).first()
    stored = np.asarray(Image.open(sample["mask"].mask_path))
    assert np.array_equal(stored, np.asarray(Image.open(io.BytesIO(masks[key]))))
    schema = dataset.get_field_schema()
    assert {"pred_spectrum", "pred_cnn", "pred_npr"} <= set(schema)
    assert dataset.info["embeddings"] == "cnn detector features"
    prediction = sample["pred_cnn"]
    assert prediction.label in ("real", "fake") and 0.5 <= prediction.confidence <= 1.0
    assert {"hard-fakes-cnn", "hard-fakes-spectrum"} <= set(dataset.list_saved_views())


def _duplicate_folder_spec(folder: Path) -> dict:
    """A folder with one image twice, and a seed that puts the two copies in train and test."""
    from forgeset.builders.planner import plan_jobs
    from forgeset.builders.spec import parse_spec

    images = folder / "photos"
    images.mkdir()
    rng = np.random.default_rng(0)
    for index in range(6):
        Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(images / f"p{index}.png")
    shutil.copy(images / "p0.png", images / "p0-copy.png")
    for seed in range(200):
        spec = tiny_spec(
            seed=seed,
            real=[{"type": "folder", "name": "photos", "path": str(images)}],
            generate=[],
            splits={"train": 0.5, "val": 0.0, "test": 0.5},
        )
        del spec["prompts"]
        splits = {job.item.ref: job.split for job in plan_jobs(parse_spec(spec), folder)}
        if {splits["p0.png"], splits["p0-copy.png"]} == {"train", "test"}:
            return spec
    raise AssertionError("no seed separates the copies")


def test_leak_view_holds_exactly_the_planted_cross_split_pair(
    tmp_path: Path, build_corpus: Callable[..., Path]
) -> None:
    out = build_corpus(tmp_path, _duplicate_folder_spec(tmp_path))
    dataset = import_corpus(out, "t-leak")
    leaks = dataset.load_saved_view("cross-split-leaks")
    assert sorted(Path(p).name for p in leaks.values("filepath")) == ["photos-00000000.png", "photos-00000001.png"]
    assert sorted(leaks.values("split")) == ["test", "train"]
    assert sorted(dataset.load_saved_view("exact-duplicates").values("key")) == sorted(leaks.values("key"))


def test_exclude_two_sync_filter_and_verify(corpus: Path, tmp_path: Path) -> None:
    dataset = import_corpus(corpus, "t-filter")
    victims = dataset.match(fo.ViewField("split") == "train").limit(2)
    victims.tag_samples("exclude")
    relabeled = dataset.match(fo.ViewField("split") == "test").first()
    relabeled.tags.append("relabel:real" if relabeled.ground_truth.label == "fake" else "relabel:fake")
    relabeled.save()
    result = CliRunner().invoke(app, ["curate", "sync", str(corpus), "--name", "t-filter"])
    assert result.exit_code == 0, result.output
    curation = pq.read_table(corpus / "curation.parquet").to_pylist()
    assert sorted(r["decision"] for r in curation) == ["exclude", "exclude", "relabel"]
    target = tmp_path / "filtered"
    result = CliRunner().invoke(app, ["filter", str(corpus), "--out", str(target)])
    assert result.exit_code == 0, result.output
    assert CliRunner().invoke(app, ["verify", str(target)]).exit_code == 0
    rows = manifest_rows(target)
    assert len(rows) == 26 and not set(victims.values("key")) & set(rows)
    flipped = rows[relabeled.key]
    assert flipped["label"] != relabeled.ground_truth.label
    index = json.loads((target / "index.json").read_text())
    original = json.loads((corpus / "index.json").read_text())
    assert index["derived_from"]["spec_sha256"] == original["spec_sha256"]
    assert index["derived_from"]["excluded"] == 2 and index["derived_from"]["relabeled"] == 1
    import hashlib

    assert (
        index["derived_from"]["curation_sha256"]
        == hashlib.sha256((corpus / "curation.parquet").read_bytes()).hexdigest()
    )


def test_filter_with_derivatives_drops_the_lineage(forensics_mix: Path, tmp_path: Path) -> None:
    out = tmp_path / "mix"
    shutil.copytree(forensics_mix, out, ignore=shutil.ignore_patterns("media", "validation"))
    rows = manifest_rows(out)
    parent = next(r["parent_key"] for r in rows.values() if r["kind"] == "inpaint" and not r["perturbation"])
    lineage = {k for k, r in rows.items() if r["group"] == rows[parent]["group"]}
    assert len(lineage) >= 2
    dataset = import_corpus(out, "t-lineage")
    dataset.match(fo.ViewField("key") == parent).tag_samples("exclude")
    sync_curation(out, "t-lineage")
    kept = filter_corpus(out, tmp_path / "with", with_derivatives=True)
    assert kept["samples"] == len(rows) - len(lineage)
    assert filter_corpus(out, tmp_path / "without")["samples"] == len(rows) - 1
    assert CliRunner().invoke(app, ["verify", str(tmp_path / "with")]).exit_code == 0


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.skipif(shutil.which("chromium") is None, reason="chromium is not installed (make test installs it)")
def test_app_shows_the_dataset_grid_in_headless_chromium(corpus: Path, tmp_path: Path) -> None:
    import os
    import re
    import signal
    import subprocess
    import sys
    import time
    import urllib.request

    port = _free_port()
    app_process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "forgeset.cli",
            "curate",
            str(corpus),
            "--name",
            "t-app",
            "--launch",
            "--port",
            str(port),
        ],
        start_new_session=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={**os.environ},
    )
    flags = [*chromium_flags(tmp_path / "profile"), "--window-size=1400,1000", "--virtual-time-budget=25000"]
    url = f"http://127.0.0.1:{port}/datasets/t-app"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2).status == 200:
                    break
            except OSError:
                pass
            assert app_process.poll() is None, app_process.stdout.read().decode()
            assert time.monotonic() < deadline, "the App did not come up"
            time.sleep(1)
        for _ in range(4):  # the page answers before its grid has loaded: wait for the grid
            dom = subprocess.run(
                ["chromium", *flags, "--dump-dom", url], capture_output=True, text=True, timeout=120
            ).stdout
            text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", re.sub(r"<(script|style).*?</\1>", "", dom, flags=re.S)))
            if re.search(r"\b28 samples\b", text):
                break
        assert "t-app" in text
        assert re.search(r"\b28 samples\b", text), text[:2000]  # the grid header counts the dataset
        assert len(re.findall(r"\b(real|fake)\b", text)) >= 10  # label badges of the grid's tiles
        from tests.detectors.test_validate import ARTIFACTS

        ARTIFACTS.mkdir(exist_ok=True)
        subprocess.run(
            ["chromium", *flags, f"--screenshot={ARTIFACTS / 'fiftyone-app.png'}", url],
            capture_output=True,
            timeout=120,
            check=True,
        )
        assert (ARTIFACTS / "fiftyone-app.png").stat().st_size > 10_000
    finally:
        os.killpg(app_process.pid, signal.SIGTERM)
        try:
            app_process.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(app_process.pid, signal.SIGKILL)
