"""The corpus loads unchanged with HF `datasets` and with `webdataset`; labels match the manifest."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import webdataset as wds
from PIL import Image

from tests.conftest import manifest_rows


def test_hf_datasets_loads_every_split(tiny_corpus: Path, tmp_path: Path) -> None:
    import datasets

    rows = manifest_rows(tiny_corpus)
    files = {split: sorted(str(p) for p in (tiny_corpus / split).glob("*.tar")) for split in ("train", "val", "test")}
    loaded = datasets.load_dataset("webdataset", data_files=files, cache_dir=str(tmp_path / "hf"))
    seen = 0
    for split, dataset in loaded.items():
        assert set(dataset.column_names) == {"__key__", "__url__", "png", "json", "cls"}
        for example in dataset:
            row = rows[example["__key__"]]
            assert row["split"] == split
            assert example["cls"] == (1 if row["label"] == "fake" else 0)
            assert example["json"]["label"] == row["label"] and example["json"]["prompt"] == (row["prompt"] or "")
            assert example["png"].size == (32, 32)
            seen += 1
    assert seen == len(rows)


def test_webdataset_reads_the_same_samples(tiny_corpus: Path) -> None:
    rows = manifest_rows(tiny_corpus)
    urls = sorted(str(p) for p in tiny_corpus.glob("*/*.tar"))
    seen = 0
    for sample in wds.WebDataset(urls, shardshuffle=False, empty_check=False):
        row = rows[sample["__key__"]]
        meta = json.loads(sample["json"])
        assert meta["key"] == row["key"] and meta["seed"] == (row["seed"] if row["seed"] is not None else -1)
        assert int(sample["cls"]) == (row["label"] == "fake")
        pixels = np.asarray(Image.open(io.BytesIO(sample["png"])))
        assert pixels.shape == (32, 32, 3)
        import hashlib

        assert hashlib.sha256(sample["png"]).hexdigest() == row["sha256"]
        seen += 1
    assert seen == len(rows)


def test_every_json_member_has_the_same_fields_and_types(tiny_corpus: Path) -> None:
    urls = sorted(str(p) for p in tiny_corpus.glob("*/*.tar"))
    shapes = {
        tuple(sorted((k, type(v).__name__) for k, v in json.loads(s["json"]).items()))
        for s in wds.WebDataset(urls, shardshuffle=False, empty_check=False)
    }
    assert len(shapes) == 1
    assert "NoneType" not in str(shapes)
