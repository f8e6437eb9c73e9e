"""Real sources are listed once into a parquet index under the build state, reused by a resume."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from forgeset.builders.planner import plan_build
from forgeset.builders.sources.folder import FolderSource
from forgeset.builders.sources.index import SourceIndex
from forgeset.builders.spec import parse_spec
from forgeset.manifests import layout
from tests.conftest import tiny_spec


def _folder(tmp_path: Path, count: int) -> Path:
    folder = tmp_path / "photos"
    folder.mkdir()
    for index in range(count):
        (folder / f"{index:05d}.png").write_bytes(b"not decoded at plan time")
    return folder


def _folder_spec(folder: Path) -> dict:
    return tiny_spec(real=[{"type": "folder", "name": "photos", "path": str(folder), "license": "CC0"}])


def test_plan_only_writes_nothing_and_build_state_keeps_a_sorted_index(tmp_path: Path) -> None:
    folder = _folder(tmp_path, 30)
    spec = parse_spec(_folder_spec(folder))
    before = sorted(tmp_path.rglob("*"))
    plan_only = plan_build(spec, tmp_path)
    assert sorted(tmp_path.rglob("*")) == before
    state = tmp_path / "out" / layout.STATE_DIR
    plan = plan_build(spec, tmp_path, state)
    index = layout.source_index(state, "photos")
    assert sorted(p.relative_to(state).as_posix() for p in state.rglob("*")) == ["sources", "sources/photos.arrow"]
    table = pa.ipc.open_file(str(index)).read_all()
    assert table.column("ref").to_pylist() == [f"{i:05d}.png" for i in range(30)]
    assert set(table.column("license").to_pylist()) == {"CC0"}
    # the same jobs, items included, whether listed in memory or read back from the index
    assert [plan.shard(ref) for ref in plan.shards] == [plan_only.shard(ref) for ref in plan_only.shards]


def test_a_resume_reuses_the_index_and_other_params_list_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = _folder(tmp_path, 12)
    state = tmp_path / "state"
    first = plan_build(parse_spec(_folder_spec(folder)), tmp_path, state)

    def refuse(self: FolderSource) -> list:
        raise AssertionError("listed again")

    with monkeypatch.context() as patched:
        patched.setattr(FolderSource, "list_items", refuse)
        again = plan_build(parse_spec(_folder_spec(folder)), tmp_path, state)
    assert [again.shard(ref) for ref in again.shards] == [first.shard(ref) for ref in first.shards]
    # a different limit is a different listing: listed again and rewritten
    limited = _folder_spec(folder)
    limited["real"][0]["limit"] = 5
    plan = plan_build(parse_spec(limited), tmp_path, state)
    assert plan.split_stage_counts and sum(c["photos"] for c in plan.split_stage_counts.values()) == 5
    assert pa.ipc.open_file(str(layout.source_index(state, "photos"))).read_all().num_rows == 5
    # a torn index file is listed again, not trusted
    layout.source_index(state, "photos").write_bytes(b"ARROW1 torn")
    plan = plan_build(parse_spec(limited), tmp_path, state)
    assert pa.ipc.open_file(str(layout.source_index(state, "photos"))).read_all().num_rows == 5


def test_rows_are_read_back_by_random_access(tmp_path: Path) -> None:
    import pickle

    count = 5000
    folder = _folder(tmp_path, 0)
    source = FolderSource(FolderSource.Params(path=str(folder)), tmp_path)
    items = [f"{i:05d}.png" for i in range(count)]
    for name in items:
        (folder / name).write_bytes(b"x")
    index = SourceIndex.open(source, tmp_path / "index.arrow")
    assert len(index) == count
    rows = np.array([count - 1, 3, 2048, 3, 4096])
    assert [item.ref for item in index.items(rows)] == [items[row] for row in rows.tolist()]
    # a worker gets the file's path, not a copy of the table, and maps it again
    assert len(pickle.dumps(index)) < 1000
    assert [item.ref for item in pickle.loads(pickle.dumps(index)).items(rows)] == [items[r] for r in rows.tolist()]
    assert index.items(np.array([], np.int64)) == []
