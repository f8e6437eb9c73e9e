"""The layout module: shard paths round-trip, and the safe join refuses every escape."""

from __future__ import annotations

from pathlib import Path

import pytest

from forgeset.manifests.layout import ALL_SPLITS, Layout, UnsafePath, parse_shard_path, path_inside, shard_path


def test_shard_paths_round_trip_for_every_split() -> None:
    for split in ALL_SPLITS:
        assert parse_shard_path(shard_path(split, 42)) == (split, 42)
    for bad in ("../train/00000.tar", "train/0.tar", "/train/00000.tar", "other/00000.tar", "train/00000.tar/x"):
        assert parse_shard_path(bad) is None, bad


def test_state_files_share_one_stem_per_shard(tmp_path: Path) -> None:
    state = Layout(tmp_path).shard_state("val", 3)
    assert state == Layout(tmp_path).shard_states / "val-00003"
    assert [p.name for p in (Layout.rows_file(state), Layout.rejects_file(state), Layout.marker_file(state))] == [
        "val-00003.rows.parquet",
        "val-00003.rejects.parquet",
        "val-00003.done.json",
    ]


@pytest.mark.parametrize(
    "parts",
    [("/etc/passwd",), ("..", "x"), ("a/../../x",), ("a\\..\\x",), ("",), ("a\x00b",), ("~root",), ("ok", "/abs")],
)
def test_path_inside_refuses_names_that_leave_the_target(tmp_path: Path, parts: tuple[str, ...]) -> None:
    with pytest.raises(UnsafePath):
        path_inside(tmp_path, *parts)


def test_path_inside_refuses_a_link_out_and_accepts_plain_names(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    target = tmp_path / "target"
    target.mkdir()
    (target / "link").symlink_to(outside)
    with pytest.raises(UnsafePath, match="resolves outside"):
        path_inside(target, "link", "file.png")
    assert path_inside(target, "train", "tiny-sd", "1_fake", "key-00000001.png") == (
        target / "train" / "tiny-sd" / "1_fake" / "key-00000001.png"
    )
