"""The FiftyOne round trip: import, brain views, tags -> curation.parquet -> a filtered corpus."""

from __future__ import annotations

import io
import json
import logging
import shutil
import tarfile
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import fiftyone as fo
import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image
from typer.testing import CliRunner

from forgeset.annotate.curation import (
    CurationError,
    _load_detectors,
    _near_duplicate_ids,
    filter_corpus,
    import_corpus,
    near_duplicate_threshold,
    sync_curation,
)
from forgeset.cli import app
from forgeset.manifests.corpus import Corpus
from forgeset.manifests.layout import Layout
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
    dataset.take(3, seed=1).tag_samples("exclude")
    assert CliRunner().invoke(app, ["curate", str(corpus), "--name", "t-import"]).exit_code == 0
    reimported = fo.load_dataset("t-import")
    assert len(reimported) == 28
    assert reimported.count_sample_tags()["exclude"] == 3  # a re-import keeps the curator's tags


def test_masks_and_detector_predictions_are_imported(
    forensics_mix: Path, validated_mix: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "mix"
    shutil.copytree(forensics_mix, out, ignore=shutil.ignore_patterns("media"))
    monkeypatch.chdir(tmp_path)
    import_corpus(Path("mix"), "t-mix")  # a relative OUT: the stored paths must not be
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    dataset = fo.load_dataset("t-mix")
    rows = manifest_rows(out)
    with tarfile.open(sorted(out.glob("train/*.tar"))[0]) as archive:
        masks = {m.name.split(".")[0]: archive.extractfile(m).read() for m in archive if m.name.endswith(".mask.png")}
    key = next(k for k in masks if rows[k]["kind"] == "inpaint")
    sample = dataset.match(fo.ViewField("key") == key).first()
    assert Path(sample["mask"].mask_path).is_absolute()
    assert np.array_equal(sample["mask"].get_mask(), np.asarray(Image.open(io.BytesIO(masks[key]))))
    # Lineage copies (a perturbed or inpainted child beside its parent) are near by design, not a
    # finding: the review queue is a small share of the corpus (it held 467 of 481 before).
    near = dataset.load_saved_view("near-duplicates")
    assert len(near) <= len(dataset) // 10, (len(near), dataset.info["near_duplicate_threshold"])
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


def _near_duplicate_folder_spec(folder: Path) -> dict:
    """14 distinct images of one pattern under independent noise, two planted copies, and lineage.

    The copies: p00 with faint noise, p01 through JPEG at quality 95. Half the reals get degraded
    copies (their own lineage group), which sit near their parents by design.
    """
    images = folder / "photos"
    images.mkdir()
    rng = np.random.default_rng(0)
    rows, columns = np.mgrid[0:32, 0:32]
    pattern = np.stack([128 + 60 * np.sin(columns / 5 + c) * np.cos(rows / 7) for c in range(3)], axis=-1)
    distinct = [np.clip(pattern + rng.normal(0, 14, pattern.shape), 0, 255).astype(np.uint8) for _ in range(14)]
    for index, pixels in enumerate(distinct):
        Image.fromarray(pixels).save(images / f"p{index:02d}.png")
    faint = np.clip(distinct[0] + rng.normal(0, 1.5, pattern.shape), 0, 255).astype(np.uint8)
    Image.fromarray(faint).save(images / "p00-copy.png")
    encoded = io.BytesIO()
    Image.fromarray(distinct[1]).save(encoded, "JPEG", quality=95)
    Image.open(encoded).save(images / "p01-copy.png")
    spec = tiny_spec(
        real=[{"type": "folder", "name": "photos", "path": str(images)}],
        generate=[],
        perturb=[{"preset": "imagedetectbench", "target": "both", "fraction": 0.5}],
    )
    del spec["prompts"]
    return spec


def test_near_duplicate_view_is_the_planted_copies_not_lineage(
    tmp_path: Path, build_corpus: Callable[..., Path]
) -> None:
    out = build_corpus(tmp_path, _near_duplicate_folder_spec(tmp_path))
    dataset = import_corpus(out, "t-near")
    rows = manifest_rows(out)
    derived = [row for row in rows.values() if row["parent_key"]]
    assert len(rows) == 16 + len(derived) and len(derived) >= 4
    planted = {"photos:p00.png", "photos:p00-copy.png", "photos:p01.png", "photos:p01-copy.png"}
    planted_groups = {row["group"] for row in rows.values() if row["source"] in planted}
    near = dataset.load_saved_view("near-duplicates")
    in_view = [rows[key] for key in near.values("key")]
    # Every planted original is there; anything else is a degraded copy of one of them.
    assert planted <= {row["source"] for row in in_view if not row["parent_key"]}
    assert {row["group"] for row in in_view} == planted_groups
    assert 0 < dataset.info["near_duplicate_threshold"] <= 0.05


def test_near_duplicate_threshold_scales_with_the_spacing_and_ignores_lineage() -> None:
    groups = [f"g{i}" for i in range(200)] * 2  # every sample and its lineage copy share a group
    rng = np.random.default_rng(3)
    spread = rng.normal(size=(200, 32))
    spread = np.concatenate([spread, spread + rng.normal(scale=1e-4, size=spread.shape)])
    assert near_duplicate_threshold(spread, groups) == 0.05  # unrelated samples ~1 apart: the cap holds
    # 200 directions evenly around a circle: unrelated neighbours are 1 - cos(2 pi / 200) apart,
    # their copies ~0; the threshold is a tenth of the unrelated spacing, not of the copies'.
    angles = np.linspace(0, 2 * np.pi, 200, endpoint=False)
    angles = np.concatenate([angles, angles + 1e-6])
    circle = np.stack([np.cos(angles), np.sin(angles)], axis=1)
    assert near_duplicate_threshold(circle, groups) == pytest.approx(0.1 * (1 - np.cos(2 * np.pi / 200)), rel=1e-3)
    assert near_duplicate_threshold(circle, ["one"] * 400) == 0.0  # no unrelated pair to compare


def test_cli_curate_is_quiet_without_fiftyone_settings(corpus: Path) -> None:
    """Run as a user would, without make's FIFTYONE_* settings: no database-version warning, one line."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k not in ("FIFTYONE_DATABASE_VALIDATION", "FIFTYONE_DO_NOT_TRACK")}
    result = subprocess.run(
        [sys.executable, "-m", "forgeset.cli", "curate", str(corpus), "--name", "t-quiet"],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    output = result.stdout + result.stderr  # FiftyOne logs its MongoDB-version warning to stdout
    assert "database_validation" not in output and "MongoDB" not in output, output
    lines = output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("imported 28 samples in "), lines
    assert "near-duplicates (" in lines[0]


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
    with pytest.raises(CurationError, match="'t-filter' holds 2 samples that are not in"):
        import_corpus(target, "t-filter")  # the old dataset would mix two versions
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


def test_a_corrupt_checkpoint_is_skipped_with_a_warning_naming_it(
    corpus: Path, caplog: pytest.LogCaptureFixture
) -> None:
    checkpoint = Layout(corpus).checkpoint("cnn")
    checkpoint.parent.mkdir(parents=True, exist_ok=True)
    checkpoint.write_bytes(b"not a safetensors file")
    with caplog.at_level(logging.WARNING, logger="forgeset.annotate.curation"):
        assert _load_detectors(Corpus.open(corpus)) == []
    [warning] = [r.getMessage() for r in caplog.records if r.name == "forgeset.annotate.curation"]
    assert warning.startswith(f"skipping detector cnn: {checkpoint} could not be loaded (")


def test_near_duplicate_ids_keep_first_occurrence_order_across_groups() -> None:
    near = SimpleNamespace(
        neighbors_map={
            "a": [("b", 0.01), ("c", 0.02)],
            "d": [("a", 0.01), ("e", 0.03)],
            "f": [("g", 0.01)],
        }
    )
    group_of_id = {"a": "1", "b": "2", "c": "1", "d": "3", "e": "4", "f": "5", "g": "5"}
    assert _near_duplicate_ids(near, group_of_id) == ["a", "b", "d", "e"]
