"""Artifact annotations (issue 14): mask regions at build time, drawn in FiftyOne, synced, filtered, published."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import tarfile
from collections.abc import Callable
from pathlib import Path

import cv2
import fiftyone as fo
import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image
from typer.testing import CliRunner

from forgeset.cli import app
from forgeset.manifests.verify import verify_corpus
from tests.conftest import manifest_rows, rehash_index, tiny_spec


def _inpaint_spec() -> dict:
    """Reals and OpenCV inpainting with box masks (no generator: builds in seconds)."""
    spec = tiny_spec(
        generate=[],
        manipulate=[
            {
                "type": "inpaint",
                "name": "telea-boxes",
                "model": "opencv:telea",
                "count": 6,
                "mask": {"type": "boxes", "area": [0.1, 0.3]},
            }
        ],
    )
    del spec["prompts"]
    return spec


@pytest.fixture(scope="module")
def inpainted(tmp_path_factory: pytest.TempPathFactory, build_corpus: Callable[..., Path]) -> Path:
    return build_corpus(tmp_path_factory.mktemp("ann"), _inpaint_spec())


def _members(out: Path) -> dict[str, dict[str, bytes]]:
    """Every sample's members, from every shard."""
    samples: dict[str, dict[str, bytes]] = {}
    for tar in sorted(out.glob("*/*.tar")):
        with tarfile.open(tar) as archive:
            for member in archive:
                key, _, ext = member.name.partition(".")
                samples.setdefault(key, {})[ext] = archive.extractfile(member).read()  # type: ignore[union-attr]
    return samples


def _component_boxes(mask_png: bytes) -> list[list[int]]:
    """Pixel boxes (x0, y0, x1, y1) of the stored mask's 8-connected parts, by OpenCV."""
    mask = np.asarray(Image.open(io.BytesIO(mask_png)))
    count, _, stats, _ = cv2.connectedComponentsWithStats((mask > 0).astype(np.uint8), connectivity=8)
    boxes = [[int(x), int(y), int(x + w), int(y + h)] for x, y, w, h, _ in stats[1:count]]
    return sorted(boxes, key=lambda b: (b[1], b[0], b[3], b[2]))


def test_build_writes_the_mask_regions_of_every_edited_sample(inpainted: Path) -> None:
    rows = manifest_rows(inpainted)
    samples = _members(inpainted)
    edited = [key for key, members in samples.items() if np.asarray(Image.open(io.BytesIO(members["mask.png"]))).any()]
    assert len(edited) == 6 and {rows[key]["kind"] for key in edited} == {"inpaint"}
    for key, members in samples.items():
        if key not in edited:
            assert "ann.json" not in members and rows[key]["regions"] is None
            assert json.loads(members["json"])["regions"] == -1
            continue
        document = json.loads(members["ann.json"])
        boxes = _component_boxes(members["mask.png"])
        assert [r["box_px"] for r in document["regions"]] == boxes and boxes
        assert {(r["label"], r["source"], r["note"]) for r in document["regions"]} == {("inpaint", "mask", "")}
        for region in document["regions"]:
            x0, y0, x1, y1 = region["box_px"]
            assert region["box"] == [round(v, 6) for v in (x0 / 32, y0 / 32, (x1 - x0) / 32, (y1 - y0) / 32)]
        assert (document["width"], document["height"]) == (32, 32)
        assert rows[key]["regions"] == len(boxes) == json.loads(members["json"])["regions"]
    index = json.loads((inpainted / "index.json").read_text())
    assert index["members"] == ["ann.json", "cls", "json", "mask.png", "png"]
    assert verify_corpus(inpainted)["samples"] == len(rows)


def _curated(inpainted: Path, tmp_path: Path, name: str) -> tuple[Path, fo.Dataset]:
    out = tmp_path / "corpus"
    shutil.copytree(inpainted, out, ignore=shutil.ignore_patterns("media"))
    result = CliRunner().invoke(app, ["curate", str(out), "--name", name])
    assert result.exit_code == 0, result.output
    return out, fo.load_dataset(name)


def test_a_region_drawn_in_fiftyone_reaches_the_published_release(inpainted: Path, tmp_path: Path) -> None:
    out, dataset = _curated(inpainted, tmp_path, "t-ann-flow")
    samples = _members(out)
    # Import shows each sample's KEY.ann.json regions, and nothing where there is none.
    for key, detections in zip(dataset.values("key"), dataset.values("regions.detections"), strict=True):
        if "ann.json" not in samples[key]:
            assert detections is None
            continue
        stored = json.loads(samples[key]["ann.json"])["regions"]
        assert [d.bounding_box for d in detections] == [r["box"] for r in stored]
        assert {(d.label, d["source"], d["note"]) for d in detections} == {("inpaint", "mask", "")}
    assert {"regions.detections.note", "regions.detections.source"} <= set(dataset.get_field_schema(flat=True))
    # A curator draws a region on a real sample and corrects nothing else.
    real_key = sorted(k for k in samples if "ann.json" not in samples[k])[0]
    sample = dataset.match(fo.ViewField("key") == real_key).first()
    note = "six fingers | <b>not</b> a path: ../../etc"
    sample["regions"] = fo.Detections(
        detections=[fo.Detection(label="hands", bounding_box=[0.1, 0.2, 0.3, 0.4], note=note)]
    )
    sample.save()
    # A re-import keeps what the curator drew (and the mask regions of the others).
    assert CliRunner().invoke(app, ["curate", str(out), "--name", "t-ann-flow"]).exit_code == 0
    sample = fo.load_dataset("t-ann-flow").match(fo.ViewField("key") == real_key).first()
    assert [(d.label, d.bounding_box, d["note"]) for d in sample["regions"].detections] == [
        ("hands", [0.1, 0.2, 0.3, 0.4], note)
    ]
    result = CliRunner().invoke(app, ["curate", "sync", str(out), "--name", "t-ann-flow"])
    assert result.exit_code == 0, result.output
    mask_regions = sum(len(json.loads(m["ann.json"])["regions"]) for m in samples.values() if "ann.json" in m)
    table = pq.read_table(out / "annotations.parquet").to_pylist()
    assert len(table) == mask_regions + 1 and f"{mask_regions + 1} regions" in result.output
    drawn = [row for row in table if row["key"] == real_key]
    assert [{k: row[k] for k in ("region", "label", "x", "y", "w", "h", "note", "source")} for row in drawn] == [
        {"region": 0, "label": "hands", "x": 0.1, "y": 0.2, "w": 0.3, "h": 0.4, "note": note, "source": "human"}
    ]
    assert verify_corpus(out)["unlisted"] == []  # the side table is a known file of OUT
    assert CliRunner().invoke(app, ["verify", str(out), "--strict"]).exit_code == 0
    # filter applies the synced regions: a new, verifiable version whose shard holds the drawn region.
    target = tmp_path / "v2"
    result = CliRunner().invoke(app, ["filter", str(out), "--out", str(target)])
    assert result.exit_code == 0, result.output
    assert "7 with regions" in result.output
    new_samples = _members(target)
    document = json.loads(new_samples[real_key]["ann.json"])
    assert document == {
        "format": 1,
        "width": 32,
        "height": 32,
        "regions": [
            {"label": "hands", "box": [0.1, 0.2, 0.3, 0.4], "box_px": [3, 6, 13, 19], "note": note, "source": "human"}
        ],
    }
    for key, members in samples.items():  # the mask regions travel unchanged
        if key != real_key:
            assert new_samples[key].get("ann.json") == members.get("ann.json")
    assert manifest_rows(target)[real_key]["regions"] == 1
    index = json.loads((target / "index.json").read_text())
    assert index["derived_from"]["annotated"] == 7 and len(index["derived_from"]["annotations_sha256"]) == 64
    assert CliRunner().invoke(app, ["verify", str(target)]).exit_code == 0
    # publish: the release's shards carry the member, the card declares and documents it.
    release = tmp_path / "release"
    result = CliRunner().invoke(app, ["publish", str(target), "--repo-id", "forensics/ann", "--dry-run", str(release)])
    assert result.exit_code == 0, result.output
    released = _members(release / "data")
    assert json.loads(released[real_key]["ann.json"]) == document
    card = (release / "README.md").read_text()
    assert "`KEY.ann.json`" in card and "- name: ann.json" in card  # documented, and a declared feature
    assert f"optional (7 of {len(samples)} samples have one)" in card
    import datasets

    split = manifest_rows(target)[real_key]["split"]
    loaded = datasets.load_dataset(str(release), split=split, cache_dir=str(tmp_path / "hf"))
    by_key = {example["__key__"]: example["ann.json"] for example in loaded}
    assert by_key[real_key]["regions"][0]["note"] == note  # declared: samples without the member load as None
    assert sorted(key for key, value in by_key.items() if value) == sorted(
        key for key in by_key if "ann.json" in new_samples[key]
    )
    # imagefolder export: a `regions` column with the drawn region, a declared feature.
    exported = tmp_path / "exported"
    result = CliRunner().invoke(app, ["export", str(target), str(exported), "--format", "imagefolder"])
    assert result.exit_code == 0, result.output
    metadata = {row["key"]: row["regions"] for row in pq.read_table(exported / split / "metadata.parquet").to_pylist()}
    assert metadata[real_key] == [{"label": "hands", "box": [0.1, 0.2, 0.3, 0.4], "note": note, "source": "human"}]
    folder = datasets.load_dataset(str(exported), split=split, cache_dir=str(tmp_path / "hf2"))
    assert folder.features["regions"] == datasets.List(
        {
            "label": datasets.Value("string"),
            "box": datasets.List(datasets.Value("float64"), length=4),
            "note": datasets.Value("string"),
            "source": datasets.Value("string"),
        }
    )


def test_a_malformed_box_from_the_app_is_refused_naming_the_key(inpainted: Path, tmp_path: Path) -> None:
    out, dataset = _curated(inpainted, tmp_path, "t-ann-bad")
    sample = dataset.first()
    sample["regions"] = fo.Detections(detections=[fo.Detection(label="hands", bounding_box=[0.1, 0.2, 0.0, 0.4])])
    sample.save()
    result = CliRunner().invoke(app, ["curate", "sync", str(out), "--name", "t-ann-bad"])
    assert result.exit_code == 2, result.output
    assert f"sample {sample['key']}: region 0: box [0.1, 0.2, 0.0, 0.4] has a width or height <= 0" in result.output
    assert not (out / "annotations.parquet").exists() and not (out / "curation.parquet").exists()


def test_a_doctored_annotations_table_is_refused_by_filter(inpainted: Path, tmp_path: Path) -> None:
    out, _ = _curated(inpainted, tmp_path, "t-ann-doctored")
    assert CliRunner().invoke(app, ["curate", "sync", str(out), "--name", "t-ann-doctored"]).exit_code == 0
    table = pq.read_table(out / "annotations.parquet")
    rows = table.to_pylist()
    rows[0]["label"] = "x" * 65
    pq.write_table(type(table).from_pylist(rows, schema=table.schema), out / "annotations.parquet")
    result = CliRunner().invoke(app, ["filter", str(out), "--out", str(tmp_path / "v2")])
    assert result.exit_code == 2, result.output
    assert f"row 0 (sample {rows[0]['key']!r})" in result.output and "field label" in result.output
    result = CliRunner().invoke(app, ["verify", str(out)])  # verify checks the side table too
    assert result.exit_code == 1 and "field label" in result.output, result.output
    rows[0]["label"], rows[0]["key"] = "ok", "not-a-key"
    pq.write_table(type(table).from_pylist(rows, schema=table.schema), out / "annotations.parquet")
    result = CliRunner().invoke(app, ["verify", str(out)])
    assert result.exit_code == 1 and "row 0 (sample 'not-a-key'): the key is not in the corpus" in result.output


def _rewrite_member(out: Path, key: str, ext: str, data: bytes) -> None:
    """Replace one member of a shard and re-vouch the shard in index.json (as an attacker would)."""
    rows = manifest_rows(out)
    tar = out / rows[key]["shard"]
    with tarfile.open(tar) as archive:
        members = [(m, archive.extractfile(m).read()) for m in archive]  # type: ignore[union-attr]
    with tarfile.open(tar, "w") as archive:
        for info, content in members:
            if info.name == f"{key}.{ext}":
                content, info.size = data, len(data)
            archive.addfile(info, io.BytesIO(content))

    def revouch(index: dict) -> None:
        for shard in index["shards"]:
            if shard["path"] == rows[key]["shard"]:
                shard["bytes"], shard["sha256"] = tar.stat().st_size, hashlib.sha256(tar.read_bytes()).hexdigest()

    rehash_index(out, revouch)


def test_verify_checks_every_annotation_member(inpainted: Path, tmp_path: Path) -> None:
    out = tmp_path / "corpus"
    shutil.copytree(inpainted, out, ignore=shutil.ignore_patterns("media"))
    key = sorted(k for k, m in _members(out).items() if "ann.json" in m)[0]
    original = _members(out)[key]["ann.json"]
    document = json.loads(original)
    document["regions"][0]["box"][2] = 0.0
    _rewrite_member(out, key, "ann.json", json.dumps(document).encode())
    result = CliRunner().invoke(app, ["verify", str(out)])
    assert result.exit_code == 1, result.output
    assert f"sample {key}: field regions.0.box: Value error" in result.output
    assert "has a width or height <= 0" in result.output
    document = json.loads(original)
    document["regions"] = document["regions"] * 2  # valid, but not the count the manifest records
    _rewrite_member(out, key, "ann.json", json.dumps(document).encode())
    result = CliRunner().invoke(app, ["verify", str(out)])
    assert result.exit_code == 1, result.output
    regions = manifest_rows(out)[key]["regions"]
    assert f"sample {key}: {2 * regions} regions in ann.json, the manifest says {regions}" in result.output


def test_reimport_fills_regions_never_set_and_keeps_deleted_ones(inpainted: Path, tmp_path: Path) -> None:
    out, dataset = _curated(inpainted, tmp_path, "t-ann-reimport")
    annotated = dataset.exists("regions")
    first, second = annotated.values("key")[:2]
    dataset.match(fo.ViewField("key") == first).set_values("regions", [None])  # as an older import left it
    dataset.match(fo.ViewField("key") == second).set_values("regions", [fo.Detections()])  # a curator deleted all
    assert CliRunner().invoke(app, ["curate", str(out), "--name", "t-ann-reimport"]).exit_code == 0
    stored = json.loads(_members(out)[first]["ann.json"])["regions"]
    reloaded = fo.load_dataset("t-ann-reimport")
    boxes = {
        key: [d.bounding_box for d in (r.detections if r else [])]
        for key, r in zip(reloaded.values("key"), reloaded.values("regions"), strict=True)
    }
    assert boxes[first] == [r["box"] for r in stored] and boxes[second] == []
    assert len(reloaded.exists("regions")) == len(annotated) == 6
