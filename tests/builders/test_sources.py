"""Each real source lists deterministically and reads back the bytes it listed."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import webdataset as wds
from PIL import Image

from forgeset.builders.sources.bundled import BundledPhotos
from forgeset.builders.sources.folder import FolderSource
from forgeset.builders.sources.huggingface import HuggingFaceSource
from forgeset.builders.sources.webdataset_tars import WebDatasetSource
from tests.conftest import HOSTILE_ACCEPTED, HOSTILE_REJECTS


def _png(seed: int, size: int = 24) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def captioned_tars(folder: Path, samples: int = 5) -> Path:
    """One WebDataset tar of `samples` PNGs with .txt captions ('caption number i')."""
    path = folder / "captioned-000.tar"
    with wds.TarWriter(str(path), encoder=False) as writer:
        for index in range(samples):
            writer.write({"__key__": f"img{index:03d}", "png": _png(index), "txt": f"caption number {index}".encode()})
        writer.write({"__key__": "nocaption", "json": b"{}"})  # no image member: not listed
    return path


def test_folder_lists_allowlisted_files_sorted_and_skips_hidden(hostile_images: Path) -> None:
    source = FolderSource(FolderSource.Params(path=str(hostile_images), license="CC0"), Path("/"))
    refs = [item.ref for item in source.items()]
    assert refs == sorted([*HOSTILE_ACCEPTED, *HOSTILE_REJECTS])
    assert all(item.license == "CC0" for item in source.items())
    assert source.read(source.items()[0]) == (hostile_images / refs[0]).read_bytes()


def test_folder_paths_are_relative_to_the_spec_folder(hostile_images: Path) -> None:
    source = FolderSource(FolderSource.Params(path=hostile_images.name, limit=3), hostile_images.parent)
    assert len(source.items()) == 3


def test_huggingface_source_reads_raw_bytes_captions_and_licenses(tmp_path: Path) -> None:
    import datasets

    images = [_png(i) for i in range(4)]
    table = datasets.Dataset.from_dict(
        {
            "image": [{"bytes": b, "path": None} for b in images],
            "text": [f"a thing {i}" for i in range(4)],
            "license": ["CC-BY", "", "CC0", "CC-BY"],
        },
        features=datasets.Features(
            {"image": datasets.Image(), "text": datasets.Value("string"), "license": datasets.Value("string")}
        ),
    )
    folder = tmp_path / "hfdata"
    folder.mkdir()
    table.to_parquet(str(folder / "train.parquet"))
    params = HuggingFaceSource.Params(
        path="hfdata", caption_column="text", license_column="license", license="unknown", limit=3
    )
    source = HuggingFaceSource(params, tmp_path)
    items = source.items()
    assert [i.ref for i in items] == ["0", "1", "2"]
    assert [i.caption for i in items] == ["a thing 0", "a thing 1", "a thing 2"]
    assert [i.license for i in items] == ["CC-BY", "unknown", "CC0"]
    assert source.read(items[2]) == images[2]


def test_webdataset_source_lists_images_with_captions(tmp_path: Path) -> None:
    tar = captioned_tars(tmp_path)
    source = WebDatasetSource(WebDatasetSource.Params(urls=["captioned-*.tar"], caption_extension="txt"), tmp_path)
    items = source.items()
    assert [i.ref for i in items] == [f"captioned-000.tar#img{i:03d}.png" for i in range(5)]
    assert items[3].caption == "caption number 3"
    assert source.read(items[3]) == _png(3)
    assert tar.exists()


def test_bundled_tiles_are_capped_spread_and_never_flat() -> None:
    source = BundledPhotos(BundledPhotos.Params(photos=["retina", "chelsea"], tile=128, max_tiles=5), Path("."))
    refs = [item.ref for item in source.items()]
    assert len([r for r in refs if r.startswith("retina/")]) == 5
    assert len([r for r in refs if r.startswith("chelsea/")]) == 5  # 2x3 grid, capped at 5
    for item in source.items():
        tile = np.asarray(Image.open(io.BytesIO(source.read(item))))
        assert tile.shape == (128, 128, 3)
        assert tile.mean(axis=2).std() >= 4.0
    assert source.items()[0].license == "CC0 (Mikael Haggstrom)"
