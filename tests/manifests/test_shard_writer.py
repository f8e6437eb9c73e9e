"""ShardWriter: byte-reproducible tars, rows, rejects and a done-marker (written last) with a stamp."""

from __future__ import annotations

import json
from pathlib import Path

from forgeset.manifests.layout import Layout
from forgeset.manifests.shard_writer import ShardMarker, ShardWriter, file_sha256, read_marker, tar_stamp


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
