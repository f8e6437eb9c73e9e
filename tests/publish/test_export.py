"""`forgeset export`: detector folder layouts and an imagefolder that `datasets` reads split by split."""

from __future__ import annotations

import errno
import hashlib
import os
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from forgeset.cli import app
from tests.conftest import manifest_rows, tiny_spec


@pytest.fixture(scope="module")
def two_generators(tmp_path_factory: pytest.TempPathFactory, build_corpus: Callable[..., Path]) -> Path:
    """The tiny spec with a second generator and a held-out one: per-generator folders and a test_ood split."""
    first = tiny_spec()["generate"][0]
    spec = tiny_spec(
        generate=[first, {**first, "name": "tiny-sd-b", "count": 6}, {**first, "name": "tiny-sd-ood", "count": 4}],
        splits={"train": 0.7, "val": 0.15, "test": 0.15, "holdout_generators": ["tiny-sd-ood"]},
    )
    return build_corpus(tmp_path_factory.mktemp("two"), spec)


def _export(out: Path, target: Path, *options: str) -> None:
    result = CliRunner().invoke(app, ["export", str(out), str(target), *options])
    assert result.exit_code == 0, result.output
    assert "nothing was re-encoded" in " ".join(result.output.split())
    assert len(result.output.strip().splitlines()) == 1  # not a terminal: the summary line only


def test_export_shows_progress_on_a_terminal(
    tiny_corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import io

    from rich.console import Console

    import forgeset.cli

    screen = io.StringIO()
    monkeypatch.setattr(forgeset.cli, "console", Console(file=screen, force_terminal=True, width=120))
    result = CliRunner().invoke(app, ["export", str(tiny_corpus), str(tmp_path / "x")])
    assert result.exit_code == 0, result.output
    samples = len(manifest_rows(tiny_corpus))
    assert "exporting" in screen.getvalue() and f"{samples}/{samples}" in screen.getvalue()


def _listing(target: Path) -> dict[str, set[str]]:
    """Image stems per folder (relative)."""
    folders: dict[str, set[str]] = {}
    for path in target.rglob("*.png"):
        folders.setdefault(path.parent.relative_to(target).as_posix(), set()).add(path.stem)
    return folders


def test_cnndetection_counts_per_folder_and_bytes(two_generators: Path, tmp_path: Path) -> None:
    target = tmp_path / "cnn"
    _export(two_generators, target, "--format", "cnndetection")
    rows = manifest_rows(two_generators)
    fakes = Counter((r["split"], r["generator"]) for r in rows.values() if r["label"] == "fake")
    reals = Counter(r["split"] for r in rows.values() if r["label"] == "real")
    reals["test_ood"] = reals["test"]  # held-out fakes are judged against the test reals
    assert ("test_ood", "tiny-sd-ood") in fakes
    listing = _listing(target)
    for (split, generator), count in fakes.items():
        assert len(listing[f"{split}/{generator}/1_fake"]) == count
        assert len(listing[f"{split}/{generator}/0_real"]) == reals[split]
    assert set(listing) == {f"{s}/{g}/1_fake" for s, g in fakes} | {f"{s}/{g}/0_real" for s, g in fakes}
    for path in target.rglob("*.png"):
        assert hashlib.sha256(path.read_bytes()).hexdigest() == rows[path.stem]["sha256"]


def test_cnndetection_balance_is_equal_per_folder_and_seeded(two_generators: Path, tmp_path: Path) -> None:
    rows = manifest_rows(two_generators)
    _export(two_generators, tmp_path / "a", "--balance", "--seed", "3")
    _export(two_generators, tmp_path / "b", "--balance", "--seed", "3")
    _export(two_generators, tmp_path / "c", "--balance", "--seed", "4")
    a, b, c = _listing(tmp_path / "a"), _listing(tmp_path / "b"), _listing(tmp_path / "c")
    assert a == b  # a pure function of the seed
    fakes = Counter((r["split"], r["generator"]) for r in rows.values() if r["label"] == "fake")
    reals = Counter(r["split"] for r in rows.values() if r["label"] == "real")
    for (split, generator), count in fakes.items():
        expected = min(count, reals["test" if split == "test_ood" else split])
        folder = f"{split}/{generator}"
        assert len(a[f"{folder}/1_fake"]) == len(a[f"{folder}/0_real"]) == expected, folder
        assert all(rows[k]["label"] == "real" and rows[k]["split"] in (split, "test") for k in a[f"{folder}/0_real"])
    draws = [(x["train/tiny-sd/1_fake"], x["train/tiny-sd/0_real"]) for x in (a, c)]
    assert draws[0] != draws[1]  # another seed, another draw (train has more reals than either generator's fakes)


def test_cnndetection_merged_has_each_real_once(two_generators: Path, tmp_path: Path) -> None:
    rows = manifest_rows(two_generators)
    target = tmp_path / "merged"
    _export(two_generators, target, "--layout", "merged")
    listing = _listing(target)
    for split in ("train", "val", "test"):
        assert listing.get(f"{split}/0_real", set()) == {
            k for k, r in rows.items() if r["split"] == split and r["label"] == "real"
        }
        assert listing.get(f"{split}/1_fake", set()) == {
            k for k, r in rows.items() if r["split"] == split and r["label"] == "fake"
        }
    assert listing["test_ood/1_fake"] == {k for k, r in rows.items() if r["split"] == "test_ood"}
    assert listing["test_ood/0_real"] == listing["test/0_real"]
    assert len(list((target / "train").rglob("*.png"))) == sum(1 for r in rows.values() if r["split"] == "train")
    _export(two_generators, tmp_path / "merged-balanced", "--layout", "merged", "--balance")
    balanced = _listing(tmp_path / "merged-balanced")
    for split in ("train", "test_ood"):
        assert len(balanced[f"{split}/0_real"]) == len(balanced[f"{split}/1_fake"]) > 0


def test_imagefolder_every_split_loads_with_declared_features(two_generators: Path, tmp_path: Path) -> None:
    import datasets

    target = tmp_path / "imagefolder"
    _export(two_generators, target, "--format", "imagefolder")
    rows = manifest_rows(two_generators)
    loaded = datasets.load_dataset(str(target), cache_dir=str(tmp_path / "hf"))
    per_split = Counter(r["split"] for r in rows.values())
    assert {split: len(d) for split, d in loaded.items()} == dict(per_split)  # test_ood not merged into test
    assert per_split["test_ood"] == 4
    features = loaded["train"].features
    assert features["label"] == datasets.ClassLabel(names=["real", "fake"])
    assert features["generator"] == datasets.ClassLabel(names=["tiny-sd", "tiny-sd-b", "tiny-sd-ood"])
    assert isinstance(features["image"], datasets.Image)
    for split, dataset in loaded.items():
        for example in dataset:
            row = rows[example["key"]]
            assert row["split"] == split and example["label"] == (row["label"] == "fake")
            expected = features["generator"].str2int(row["generator"]) if row["generator"] else -1
            assert example["generator"] == expected and example["parent_key"] == (row["parent_key"] or "")
    for split in per_split:  # ImageFolder's classes (sorted folder names) in the order of our label
        classes = sorted(entry.name for entry in os.scandir(target / split) if entry.is_dir())
        present = {r["label"] for r in rows.values() if r["split"] == split}
        assert classes == [folder for label, folder in (("real", "0_real"), ("fake", "1_fake")) if label in present]
        for folder in classes:
            assert {rows[p.stem]["label"] for p in (target / split / folder).iterdir()} == {folder[2:]}
    train_classes = sorted(entry.name for entry in os.scandir(target / "train") if entry.is_dir())
    assert {name: index for index, name in enumerate(train_classes)} == {"0_real": 0, "1_fake": 1}  # class_to_idx
    for path in target.rglob("*.png"):
        assert hashlib.sha256(path.read_bytes()).hexdigest() == rows[path.stem]["sha256"]
    import mlcroissant as mlc

    croissant = mlc.Dataset(jsonld=str(target / "croissant.json"))
    for split, count in per_split.items():
        records = list(croissant.records(split))
        assert len(records) == count
        assert all((target / split / r[f"{split}/file_name"].decode()).is_file() for r in records)


def test_imagefolder_keeps_masks_in_a_sibling_tree(build_corpus: Callable[..., Path], tmp_path: Path) -> None:
    import datasets

    inpaint = {"type": "inpaint", "name": "telea", "model": "opencv:telea", "count": 6, "mask": {"type": "boxes"}}
    out = build_corpus(tmp_path / "loc", tiny_spec(manipulate=[inpaint]))
    rows = manifest_rows(out)
    target = tmp_path / "imagefolder"
    _export(out, target, "--format", "imagefolder")
    assert sorted(p.name for p in (target / "train").iterdir() if p.is_dir()) == ["0_real", "1_fake"]
    loaded = datasets.load_dataset(str(target), split="train", cache_dir=str(tmp_path / "hf"))
    inpainted = [e for e in loaded if e["kind"] == "inpaint"]
    assert inpainted and all(e["mask_path"] == f"masks/train/{e['key']}.png" for e in loaded)
    assert any(np.asarray(Image.open(target / e["mask_path"])).max() == 255 for e in inpainted)
    assert all(np.asarray(Image.open(target / e["mask_path"])).max() == 0 for e in loaded if e["kind"] == "real")
    assert sum(1 for r in rows.values() if r["split"] == "train") == len(loaded)


def test_export_refuses_unknown_format_layout_and_non_empty_target(tiny_corpus: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["export", str(tiny_corpus), str(tmp_path / "x"), "--format", "coco"])
    assert result.exit_code == 2 and "--format must be one of cnndetection, imagefolder" in result.output
    result = CliRunner().invoke(app, ["export", str(tiny_corpus), str(tmp_path / "x"), "--layout", "flat"])
    assert result.exit_code == 2 and "--layout must be one of per-generator, merged" in result.output
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    result = CliRunner().invoke(app, ["export", str(tiny_corpus), str(tmp_path / "full")])
    assert result.exit_code == 2 and "is not empty" in result.output


def test_cnndetection_copies_a_real_when_the_filesystem_refuses_hard_links(
    two_generators: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(source: object, target: object) -> None:
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(os, "link", refuse)
    target = tmp_path / "cnn"
    _export(two_generators, target)
    rows = manifest_rows(two_generators)
    copies = [p for p in target.rglob("*.png") if p.parent.name == "0_real"]
    generators = {p.parent.parent.name for p in copies if p.parent.parent.parent.name == "train"}
    assert len(generators) == 2  # each train real lies in both generator folders, as a copy
    train_reals = sum(1 for r in rows.values() if r["split"] == "train" and r["label"] == "real")
    assert sum(1 for p in copies if p.parts[-4] == "train") == 2 * train_reals
    assert all(p.stat().st_nlink == 1 for p in copies)
    assert all(hashlib.sha256(p.read_bytes()).hexdigest() == rows[p.stem]["sha256"] for p in copies)


def test_export_refuses_a_target_that_is_a_file(tiny_corpus: Path, tmp_path: Path) -> None:
    (tmp_path / "file").write_text("mine")
    result = CliRunner().invoke(app, ["export", str(tiny_corpus), str(tmp_path / "file")])
    assert result.exit_code == 2
    assert f"{tmp_path / 'file'} exists and is not a folder" in " ".join(result.output.split())
    assert (tmp_path / "file").read_text() == "mine"
