"""specs/forensics-mix.yaml: every kind of sample, lineage-grouped splits, masks, reproducibility."""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from forgeset.builders.build import build_dataset
from forgeset.builders.executors import RayExecutor
from forgeset.builders.spec import load_spec
from forgeset.cli import app
from forgeset.perturbations.stage import apply_perturbation
from tests.conftest import SPECS, manifest_rows, tiny_spec, write_spec


def _members(out: Path) -> dict[str, dict[str, bytes]]:
    samples: dict[str, dict[str, bytes]] = {}
    for tar in sorted(out.glob("*/*.tar")):
        with tarfile.open(tar) as archive:
            for member in archive:
                key, _, ext = member.name.partition(".")
                samples.setdefault(key, {})[ext] = archive.extractfile(member).read()
    return samples


def _pixels(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)))


def test_it_verifies_and_every_kind_is_present(forensics_mix: Path) -> None:
    result = CliRunner().invoke(app, ["verify", str(forensics_mix)])
    assert result.exit_code == 0, result.output
    index = json.loads((forensics_mix / "index.json").read_text())
    assert index["members"] == ["ann.json", "cls", "json", "mask.png", "png"]
    assert set(index["counts"]["all"]["kind"]) == {"real", "text2image", "inpaint", "launder"}
    assert index["rejects"] == 0


def test_masks_are_non_empty_exactly_for_inpaint_samples_and_in_range(forensics_mix: Path) -> None:
    spec = load_spec(SPECS / "forensics-mix.yaml").spec
    ranges = {stage.generator_name: stage.mask.area for stage in spec.manipulate if stage.type == "inpaint"}
    rows = manifest_rows(forensics_mix)
    for key, members in _members(forensics_mix).items():
        mask = _pixels(members["mask.png"])
        area = float((mask > 0).mean())
        row = rows[key]
        if row["kind"] == "inpaint":
            low, high = ranges[row["generator"]]
            assert low <= area <= high, (key, area)
            assert row["mask_area"] == pytest.approx(area, abs=1e-6)
        else:
            assert area == 0.0 and row["mask_area"] is None, key


def test_lineage_parents_exist_share_the_split_and_leakage_is_zero(forensics_mix: Path) -> None:
    rows = manifest_rows(forensics_mix)
    derived = [row for row in rows.values() if row["parent_key"]]
    assert {row["kind"] for row in derived} >= {"inpaint", "launder"}
    for row in derived:
        parent = rows[row["parent_key"]]
        assert parent["split"] == row["split"] and parent["group"] == row["group"]
    for row in rows.values():
        if row["kind"] in ("inpaint", "launder") and not row["perturbation"]:
            assert rows[row["parent_key"]]["label"] == "real"
        if row["perturbation"]:  # a degraded copy: same label and kind as the sample it degrades
            parent = rows[row["parent_key"]]
            assert (parent["label"], parent["kind"]) == (row["label"], row["kind"])
    index = json.loads((forensics_mix / "index.json").read_text())
    assert index["leakage"] == {"parents_across_splits": 0, "hashes_across_splits": 0}


def test_held_out_generator_is_only_in_test_ood(forensics_mix: Path) -> None:
    rows = list(manifest_rows(forensics_mix).values())
    held = [row for row in rows if row["generator"] == "tiny-sd-euler"]
    assert len(held) >= 24 and {row["split"] for row in held} == {"test_ood"}
    assert {row["generator"] for row in rows if row["split"] == "test_ood"} == {"tiny-sd-euler"}


def test_recipes_are_recorded_per_kind(forensics_mix: Path) -> None:
    rows = list(manifest_rows(forensics_mix).values())
    vae = [r for r in rows if r["generator"] == "tiny-vae-roundtrip" and not r["perturbation"]]
    assert vae and all(r["psnr"] is not None and r["ssim"] is not None and r["strength"] is None for r in vae)
    sweep = sorted({r["strength"] for r in rows if r["generator"] == "tiny-img2img"})
    assert sweep == [0.3, 0.6]
    ops = json.loads(next(r for r in rows if r["generator"] == "telea-boxes")["ops"])
    assert ops[0]["op"] == "inpaint" and ops[0]["params"]["mask"]["area"] == [0.05, 0.25]


def test_perturbed_samples_are_reproducible_from_their_key(forensics_mix: Path) -> None:
    spec = load_spec(SPECS / "forensics-mix.yaml").spec
    stage = spec.perturb[0]
    rows, members = manifest_rows(forensics_mix), _members(forensics_mix)
    children = [row for row in rows.values() if row["perturbation"] == "imagedetectbench"]
    labels = {row["label"] for row in children}
    assert labels == {"real", "fake"}  # the default target: both classes, same distribution
    for row in children[:12]:
        parent = _pixels(members[row["parent_key"]]["png"])
        mask = _pixels(members[row["parent_key"]]["mask.png"])
        # The seed is the one the manifest row records: no formula is copied here.
        pixels, _, applied = apply_perturbation(stage, parent, mask, int(row["perturb_seeds"]))
        assert np.array_equal(pixels, _pixels(members[row["key"]]["png"]))
        assert applied == [op for op in json.loads(row["ops"]) if op.get("stage") == "imagedetectbench"]


def test_hf_datasets_loads_images_and_masks(forensics_mix: Path, tmp_path: Path) -> None:
    import datasets

    files = {"train": sorted(str(p) for p in (forensics_mix / "train").glob("*.tar"))}
    train = datasets.load_dataset("webdataset", data_files=files, split="train", cache_dir=str(tmp_path))
    rows = manifest_rows(forensics_mix)
    assert len(train) == sum(1 for row in rows.values() if row["split"] == "train")
    example = next(e for e in train if rows[e["__key__"]]["kind"] == "inpaint")
    assert example["mask.png"].size == (64, 64) and np.asarray(example["mask.png"]).max() == 255


def test_rebuilding_on_one_worker_gives_identical_shards(forensics_mix: Path, tmp_path: Path, ray_session: Any) -> None:
    build_dataset(load_spec(SPECS / "forensics-mix.yaml"), tmp_path / "again", executor=RayExecutor(1))
    first = json.loads((forensics_mix / "index.json").read_text())["shards"]
    second = json.loads((tmp_path / "again" / "index.json").read_text())["shards"]
    assert [(s["path"], s["sha256"]) for s in first] == [(s["path"], s["sha256"]) for s in second]


def test_bias_gate_trips_on_jpeg_reals_and_png_fakes(tmp_path: Path, ray_session: Any) -> None:
    spec = tiny_spec(
        image={"size": 32, "per_label": {"real": {"format": "jpeg", "jpeg_quality": 90}}},
        bias_gate={"max_auc": 0.6},
    )
    spec["generate"][0]["count"] = 16
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["build", "dataset", "--spec", str(write_spec(tmp_path, spec)), "--out", str(out)])
    assert result.exit_code == 3, result.output
    text = " ".join(result.output.split())
    assert "bias gate: a metadata-only probe tells real from fake with AUC 1.000 (max 0.600)" in text
    assert "leading attribute: format" in text
    assert (out / "index.json").exists()
    assert CliRunner().invoke(app, ["verify", str(out)]).exit_code == 0  # written, and consistent
    rows = list(manifest_rows(out).values())
    assert {(r["label"], r["format"]) for r in rows} == {("real", "jpeg"), ("fake", "png")}


def test_one_policy_corpus_passes_the_container_part_of_the_probe(tiny_corpus: Path) -> None:
    probe = json.loads((tiny_corpus / "index.json").read_text())["bias_probe"]
    assert {probe["features"][name] for name in ("width", "height", "format", "quality")} == {0.5}


@pytest.mark.parametrize("name", ["quickstart.yaml", "forensics-mix.yaml", "real-weights.yaml"])
def test_shipped_specs_validate(name: str) -> None:
    spec = load_spec(SPECS / name).spec
    assert spec.name


def test_real_weights_example_uses_hub_models_and_coco_captions() -> None:
    spec = load_spec(SPECS / "real-weights.yaml").spec
    assert spec.prompts.type == "captions" and spec.real[0].type == "huggingface"
    assert {m.model for m in spec.manipulate} >= {
        "stabilityai/stable-diffusion-2-inpainting",
        "stabilityai/sd-vae-ft-mse",
    }


def test_parents_asked_for_beyond_the_sources_is_a_spec_error(
    tmp_path: Path, build_corpus: Callable[..., Path]
) -> None:
    spec = tiny_spec(manipulate=[{"type": "inpaint", "model": "opencv:telea", "count": 99}])
    result = CliRunner().invoke(
        app, ["build", "dataset", "--spec", str(write_spec(tmp_path, spec)), "--out", str(tmp_path / "o")]
    )
    assert result.exit_code == 2
    assert "manipulate[0].count: asks for 99 parents, the real sources list 16" in " ".join(result.output.split())


def test_every_split_feeds_a_two_worker_webdataset_dataloader(forensics_mix: Path) -> None:
    """Each split has at least `shards.min_per_split` shards (or one per group when fewer), so a torch
    DataLoader with 2 workers over webdataset reads it whole: every key once, labels as the manifest."""
    import webdataset as wds
    from torch.utils.data import DataLoader

    rows = manifest_rows(forensics_mix)
    index = json.loads((forensics_mix / "index.json").read_text())
    for split in ("train", "val", "test", "test_ood"):
        urls = sorted(str(forensics_mix / s["path"]) for s in index["shards"] if s["split"] == split)
        assert len(urls) >= 2
        dataset = wds.WebDataset(urls, shardshuffle=False, nodesplitter=wds.split_by_node).to_tuple("__key__", "cls")
        seen: list[tuple[str, int]] = []
        for keys, labels in DataLoader(dataset, batch_size=8, num_workers=2):
            seen += zip(keys, (int(label) for label in labels), strict=True)
        expected = sorted((key, int(row["label"] == "fake")) for key, row in rows.items() if row["split"] == split)
        assert sorted(seen) == expected, split  # every key exactly once
