"""ShardWriter: byte-reproducible tars, rows, rejects and a done-marker (written last) with a stamp."""

from __future__ import annotations

import json
import uuid
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

import boto3
import fsspec
import pyarrow.parquet as pq
import webdataset as wds

from forgeset.manifests.layout import Layout
from forgeset.manifests.schema import RejectRecord, SampleRecord
from forgeset.manifests.shard_writer import (
    ShardMarker,
    ShardWriter,
    file_sha256,
    read_marker,
    read_shard_marker,
    tar_stamp,
)
from forgeset.manifests.storage import Storage


def _samples(count: int) -> list[dict[str, bytes | str]]:
    return [{"__key__": f"k{i:03d}", "cls": str(i % 2).encode(), "json": b'{"i": %d}' % i} for i in range(count)]


def test_marker_records_the_tar_stamp(tmp_path: Path) -> None:
    marker = ShardWriter(tmp_path, "train", 2).finish(_samples(3), [], [])
    tar = tmp_path / "train" / "00002.tar"
    info = tar.stat()
    assert marker.stamp == tar_stamp(tar) == f"{info.st_size}:{info.st_mtime_ns}"
    assert marker.sha256 == file_sha256(tar) and marker.bytes == info.st_size and marker.count == 3
    assert read_marker(Layout(tmp_path).shard_state("train", 2)) == marker


def test_a_marker_without_stamp_still_loads(tmp_path: Path) -> None:
    state = Layout(tmp_path).shard_state("val", 0)
    state.parent.mkdir(parents=True)
    old = {"path": "val/00000.tar", "count": 1, "bytes": 10240, "sha256": "ab" * 32, "rejects": 0}
    Layout.marker_file(state).write_text(json.dumps(old))
    assert read_marker(state) == ShardMarker("val/00000.tar", 1, 10240, "ab" * 32, 0, "")


def _records(samples: list[dict[str, bytes | str]]) -> list[SampleRecord]:
    """Minimal manifest rows for the samples (only what the row file needs to be typed)."""
    names = [f.name for f in fields(SampleRecord)]
    base: dict[str, Any] = {name: None for name in names}
    base.update(split="train", label="real", kind="real", group="g", width=8, height=8, format="png", quality=0)
    base.update(ops="", sha256="0" * 64, bytes=1, shard="train/00004.tar")
    return [SampleRecord(**{**base, "key": str(s["__key__"])}) for s in samples]


def test_a_shard_on_s3_has_the_bytes_of_a_local_one(tmp_path: Path, s3_server: str) -> None:
    samples = _samples(5)
    records = _records(samples)
    rejects = [RejectRecord("k900", "folder", "a.png", "empty file", "0 bytes", "train/00004.tar")]
    local = ShardWriter(tmp_path, "train", 4).finish(samples, records, rejects)
    root = f"{s3_server}/corpus-{uuid.uuid4().hex}"
    remote = ShardWriter(root, "train", 4).finish(samples, records, rejects)
    storage = Storage(root)

    state = ".forgeset/shards/train-00004"
    names = ["train/00004.tar", f"{state}.rows.parquet", f"{state}.rejects.parquet", f"{state}.done.json"]
    assert storage.list() == sorted(names)  # no temporary key left
    for name in names[:3]:
        assert storage.read_bytes(name) == (tmp_path / name).read_bytes(), name
    assert replace(remote, stamp="") == replace(local, stamp="")
    bucket, _, prefix = storage.root_path.partition("/")
    etag = boto3.client("s3").head_object(Bucket=bucket, Key=f"{prefix}/train/00004.tar")["ETag"]
    assert remote.stamp == f"{local.bytes}:{etag.strip(chr(34))}" == storage.stamp("train/00004.tar")
    assert read_shard_marker(storage, "train", 4) == remote
    assert read_shard_marker(storage, "train", 5) is None
    assert (
        read_shard_marker(Storage(tmp_path), "train", 4)
        == local
        == read_marker(Layout(tmp_path).shard_state("train", 4))
    )

    url = storage.url_of("train/00004.tar")
    with fsspec.open(url, "rb") as stream:  # webdataset's own tar reader, over s3fs
        read = list(
            wds.tariterators.group_by_keys(wds.tariterators.tar_file_expander([{"url": url, "stream": stream}]))
        )
    assert [(s["__key__"], s["cls"], s["json"]) for s in read] == [(s["__key__"], s["cls"], s["json"]) for s in samples]
    assert pq.read_table(storage.url_of(f"{state}.rows.parquet")).column("key").to_pylist() == [
        f"k{i:03d}" for i in range(5)
    ]


def test_a_memory_corpus_round_trips(tmp_path: Path) -> None:
    root = f"memory://forgeset-{uuid.uuid4().hex}/out"
    samples = _samples(4)
    marker = ShardWriter(root, "val", 0).finish(samples, _records(samples), [])
    local = ShardWriter(tmp_path, "val", 0).finish(samples, _records(samples), [])
    storage = Storage(root)
    assert storage.read_bytes("val/00000.tar") == (tmp_path / "val" / "00000.tar").read_bytes()
    assert marker.sha256 == local.sha256 == storage.sha256("val/00000.tar")
    assert read_shard_marker(storage, "val", 0) == marker
    assert marker.stamp == storage.stamp("val/00000.tar") and marker.stamp.startswith(f"{marker.bytes}:")


def test_a_local_shard_leaves_only_its_files(tmp_path: Path) -> None:
    writer = ShardWriter(str(tmp_path), "test", 1)
    writer.finish(_samples(2), [], [])
    assert writer.state == tmp_path / ".forgeset" / "shards" / "test-00001"
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file()) == [
        ".forgeset/shards/test-00001.done.json",
        ".forgeset/shards/test-00001.rejects.parquet",
        ".forgeset/shards/test-00001.rows.parquet",
        "test/00001.tar",
    ]
