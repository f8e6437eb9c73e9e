"""Each real source lists deterministically and reads back the bytes it listed."""

from __future__ import annotations

import io
import tarfile
import uuid
from pathlib import Path

import numpy as np
import pytest
import webdataset as wds
from PIL import Image

from forgeset.builders.sources.base import RealItem
from forgeset.builders.sources.bundled import BundledPhotos
from forgeset.builders.sources.folder import FolderSource
from forgeset.builders.sources.huggingface import HuggingFaceSource
from forgeset.builders.sources.webdataset_tars import WebDatasetSource
from forgeset.core.rejection import SampleRejected
from forgeset.manifests.storage import Storage
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


def _folder(tmp_path: Path) -> Path:
    """photos/ with two PNGs, a link to a PNG inside, a link to a PNG outside and a link to a folder outside."""
    photos, outside = tmp_path / "photos", tmp_path / "outside"
    (photos / "sub").mkdir(parents=True)
    outside.mkdir()
    (photos / "a.png").write_bytes(_png(1))
    (photos / "sub" / "b.png").write_bytes(_png(2, size=64))
    (outside / "secret.png").write_bytes(_png(3))
    (photos / "inside-link.png").symlink_to(photos / "a.png")
    (photos / "outside-link.png").symlink_to(outside / "secret.png")
    (photos / "outside-dir").symlink_to(outside, target_is_directory=True)
    return photos


def test_folder_skips_and_counts_links_that_lead_outside(tmp_path: Path) -> None:
    source = FolderSource(FolderSource.Params(path="photos"), tmp_path)
    photos = _folder(tmp_path)
    assert [item.ref for item in source.items()] == ["a.png", "inside-link.png", "sub/b.png"]
    assert source.skipped_links == 2
    (photos / "a.png").unlink()
    (photos / "a.png").symlink_to(tmp_path / "outside" / "secret.png")  # swapped after listing
    with pytest.raises(SampleRejected) as caught:
        source.read(RealItem("a.png"))
    assert (caught.value.reason, caught.value.detail) == ("outside the folder", f"a.png leads outside {photos}")


def test_folder_rejects_files_over_max_bytes_unread(tmp_path: Path) -> None:
    _folder(tmp_path)
    limit = len(_png(1)) + 1
    source = FolderSource(FolderSource.Params(path="photos", max_bytes=limit), tmp_path)
    assert source.read(RealItem("a.png")) == _png(1)
    size = len(_png(2, size=64))
    with pytest.raises(SampleRejected) as caught:
        source.read(RealItem("sub/b.png"))
    assert (caught.value.reason, caught.value.detail) == (
        "too large",
        f"sub/b.png has {size} bytes; max_bytes is {limit}",
    )
    assert FolderSource.Params(path="x").max_bytes == 256 * 2**20


def test_folder_check_names_a_missing_folder(tmp_path: Path) -> None:
    source = FolderSource(FolderSource.Params(path="nowhere"), tmp_path)
    assert source.check() == [
        ("path", f"folder {tmp_path / 'nowhere'} does not exist; create it or fix `path` (relative to the spec file)")
    ]


def _tar(path: Path, members: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w") as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


def test_webdataset_not_a_tar_is_one_rejected_item_naming_it(tmp_path: Path) -> None:
    captioned_tars(tmp_path, samples=2)
    (tmp_path / "captioned-001.tar").write_bytes(b"this is not a tar archive at all" * 40)
    source = WebDatasetSource(WebDatasetSource.Params(urls=["captioned-*.tar"], caption_extension="txt"), tmp_path)
    items = source.items()
    assert [i.ref for i in items] == [
        "captioned-000.tar#img000.png",
        "captioned-000.tar#img001.png",
        "captioned-001.tar#",
    ]
    with pytest.raises(SampleRejected) as caught:
        source.read(items[2])
    assert caught.value.reason == "not a tar"
    assert caught.value.detail.startswith("captioned-001.tar: ")
    assert source.read(items[1]) == _png(1)


def test_webdataset_caption_that_is_not_utf8_rejects_that_sample(tmp_path: Path) -> None:
    _tar(
        tmp_path / "mixed.tar",
        {"good.png": _png(1), "good.txt": b"a cat", "bad.png": _png(2), "bad.txt": "caf\xe9".encode("latin-1")},
    )
    source = WebDatasetSource(WebDatasetSource.Params(urls=["mixed.tar"], caption_extension="txt"), tmp_path)
    items = source.items()
    assert [(i.ref, i.caption) for i in items] == [("mixed.tar#bad.png", None), ("mixed.tar#good.png", "a cat")]
    with pytest.raises(SampleRejected) as caught:
        source.read(items[0])
    assert (caught.value.reason, caught.value.detail) == (
        "caption not UTF-8",
        "mixed.tar#bad.txt: invalid byte at offset 3",
    )
    assert source.read(items[1]) == _png(1)


def test_webdataset_truncated_tar_keeps_what_it_can_and_rejects_the_rest(tmp_path: Path) -> None:
    whole = _tar(tmp_path / "whole.tar", {f"s{i}.png": _png(i, size=48) for i in range(4)}).read_bytes()
    (tmp_path / "cut.tar").write_bytes(whole[: len(whole) // 2])
    source = WebDatasetSource(WebDatasetSource.Params(urls=["cut.tar"]), tmp_path)
    items = source.items()
    refs = [i.ref for i in items]
    assert refs[-1] == "cut.tar#" and len(refs) >= 2
    reasons = []
    for item in items:
        try:
            source.read(item)
            reasons.append("ok")
        except SampleRejected as rejected:
            reasons.append(rejected.reason)
            assert rejected.detail.startswith(item.ref if item.ref != "cut.tar#" else "cut.tar: ")
    assert reasons[0] == "ok" and reasons[-1] == "damaged tar"
    assert set(reasons) <= {"ok", "bad tar member", "damaged tar"}


def test_webdataset_member_over_max_bytes_and_missing_member_are_rejected(tmp_path: Path) -> None:
    _tar(tmp_path / "t.tar", {"big.png": _png(1, size=64), "small.png": _png(2, size=8)})
    source = WebDatasetSource(WebDatasetSource.Params(urls=["t.tar"], max_bytes=1000), tmp_path)
    with pytest.raises(SampleRejected) as caught:
        source.read(RealItem("t.tar#big.png"))
    assert caught.value.reason == "too large"
    assert caught.value.detail == f"t.tar#big.png has {len(_png(1, size=64))} bytes; max_bytes is 1000"
    assert source.read(RealItem("t.tar#small.png")) == _png(2, size=8)
    with pytest.raises(SampleRejected, match=r"bad tar member: t\.tar#gone\.png: not in the tar"):
        source.read(RealItem("t.tar#gone.png"))


def test_webdataset_check_names_each_url_that_matches_nothing(tmp_path: Path) -> None:
    captioned_tars(tmp_path, samples=1)
    source = WebDatasetSource(WebDatasetSource.Params(urls=["captioned-*.tar", "missing/*.tar"]), tmp_path)
    assert source.check() == [("urls[1]", "no file matches 'missing/*.tar'; fix the path (relative to the spec file)")]


def test_bad_real_inputs_become_reject_rows_in_a_build(tmp_path: Path) -> None:
    """A build over a folder with an oversized file and an outside link, and broken tars: rejects, no traceback."""
    import pyarrow.parquet as pq
    from typer.testing import CliRunner

    from forgeset.cli import app
    from tests.conftest import write_spec

    _folder(tmp_path)
    _tar(tmp_path / "mixed.tar", {"good.png": _png(1), "good.txt": b"a cat", "bad.png": _png(4), "bad.txt": b"\xff"})
    (tmp_path / "junk.tar").write_bytes(b"not a tar" * 100)
    spec = {
        "name": "hostile-reals",
        "image": {"size": 16},
        "shards": {"size": 4},
        "real": [
            {"type": "folder", "name": "photos", "path": "photos", "max_bytes": len(_png(1)) + 1},
            {"type": "webdataset", "name": "tars", "urls": ["mixed.tar", "junk.tar"], "caption_extension": "txt"},
        ],
    }
    out = tmp_path / "out"
    result = CliRunner().invoke(
        app, ["build", "dataset", "--spec", str(write_spec(tmp_path, spec)), "--out", str(out), "--executor", "local"]
    )
    assert result.exit_code == 0, result.output
    rejects = sorted((row["ref"], row["reason"]) for row in pq.read_table(out / "rejects.parquet").to_pylist())
    assert rejects == [
        ("junk.tar#", "not a tar"),
        ("mixed.tar#bad.png", "caption not UTF-8"),
        ("sub/b.png", "too large"),
    ]


def _upload(folder: Path, url: str) -> Storage:
    """Every file under `folder` (hidden ones too) published under `url`."""
    storage = Storage(url)
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            storage.publish_bytes(path.read_bytes(), path.relative_to(folder).as_posix())
    return storage


def test_folder_on_s3_lists_and_reads_like_the_local_folder(hostile_images: Path, s3_server: str) -> None:
    url = f"{s3_server}/photos-{uuid.uuid4().hex}/"
    _upload(hostile_images, url)
    local = FolderSource(FolderSource.Params(path=str(hostile_images), license="CC0"), Path("/"))
    remote = FolderSource(FolderSource.Params(path=url, license="CC0"), Path("/elsewhere"))
    assert remote.check() == []
    assert remote.items() == local.items()
    assert [item.ref for item in remote.items()] == sorted([*HOSTILE_ACCEPTED, *HOSTILE_REJECTS])
    assert [remote.read(item) for item in remote.items()] == [local.read(item) for item in local.items()]
    flat = FolderSource(FolderSource.Params(path=url, recursive=False), Path("/"))
    assert [item.ref for item in flat.items()] == sorted(
        name for name in [*HOSTILE_ACCEPTED, *HOSTILE_REJECTS] if "/" not in name
    )
    assert [item.ref for item in flat.items()] == [
        item.ref
        for item in FolderSource(FolderSource.Params(path=str(hostile_images), recursive=False), Path("/")).items()
    ]


def test_folder_on_s3_rejects_large_outside_and_missing(tmp_path: Path, s3_server: str) -> None:
    _folder(tmp_path)
    url = f"{s3_server}/photos-{uuid.uuid4().hex}"
    _upload(tmp_path / "photos", url)
    limit = len(_png(1)) + 1
    source = FolderSource(FolderSource.Params(path=url, max_bytes=limit), tmp_path)
    assert source.read(RealItem("a.png")) == _png(1)
    with pytest.raises(SampleRejected) as caught:
        source.read(RealItem("sub/b.png"))
    assert (caught.value.reason, caught.value.detail) == (
        "too large",
        f"sub/b.png has {len(_png(2, size=64))} bytes; max_bytes is {limit}",
    )
    with pytest.raises(SampleRejected) as caught:
        source.read(RealItem("../other/secret.png"))
    assert (caught.value.reason, caught.value.detail) == (
        "outside the folder",
        f"../other/secret.png leads outside {url}",
    )
    with pytest.raises(FileNotFoundError):  # an `unreadable` reject in a build
        source.read(RealItem("gone.png"))
    missing = FolderSource(FolderSource.Params(path=f"{s3_server}/nothing-here"), tmp_path)
    assert missing.check() == [("path", f"nothing at {s3_server}/nothing-here; upload the images there or fix `path`")]


@pytest.mark.parametrize("scheme", ["memory", "s3"])
def test_webdataset_tars_at_a_url_list_and_read_like_local_ones(
    tmp_path: Path, scheme: str, request: pytest.FixtureRequest
) -> None:
    captioned_tars(tmp_path)
    _tar(tmp_path / "captioned-001.tar", {"z.png": _png(9)})
    bucket = request.getfixturevalue("s3_server") if scheme == "s3" else f"memory://wds-{uuid.uuid4().hex}"
    url = f"{bucket}/shards-{uuid.uuid4().hex}"
    _upload(tmp_path, url)
    params = {"urls": [f"{url}/captioned-*.tar"], "caption_extension": "txt"}
    remote = WebDatasetSource(WebDatasetSource.Params(**params), Path("/elsewhere"))
    local = WebDatasetSource(WebDatasetSource.Params(urls=["captioned-*.tar"], caption_extension="txt"), tmp_path)
    assert remote.check() == []
    canonical = Storage(url).url_of()  # fsspec's spelling: memory://x becomes memory:///x
    assert [i.ref for i in remote.items()] == [f"{canonical}/{i.ref}" for i in local.items()]
    assert [i.caption for i in remote.items()] == [i.caption for i in local.items()]
    assert [remote.read(i) for i in remote.items()] == [local.read(i) for i in local.items()]
    assert remote.read(remote.items()[-1]) == _png(9)
    absent = WebDatasetSource(WebDatasetSource.Params(urls=[f"{url}/none-*.tar", f"{url}/captioned-000.tar"]), tmp_path)
    assert absent.check() == [
        ("urls[0]", f"no file matches '{url}/none-*.tar'; fix the path (relative to the spec file)")
    ]
