"""finalize streams the per-shard rows: the manifest, counts, leakage and probe equal a whole-table reduction."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from forgeset.manifests import index as index_module
from forgeset.manifests.bias_probe import PROBE_COLUMNS, bias_probe
from forgeset.manifests.index import TALLY_COLUMNS, ManifestTally
from forgeset.manifests.layout import Layout


def reference_counts(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The per-row-dict count_table that finalize used before it streamed (kept as the reference)."""

    def tally(subset: list[dict]) -> dict[str, Any]:
        return {
            "total": len(subset),
            "label": dict(sorted(Counter(r["label"] for r in subset).items())),
            "kind": dict(sorted(Counter(r["kind"] for r in subset).items())),
            "generator": dict(sorted(Counter(r["generator"] or "(real)" for r in subset).items())),
        }

    splits = sorted({r["split"] for r in rows})
    return {"all": tally(rows), "splits": {s: tally([r for r in rows if r["split"] == s]) for s in splits}}


def reference_leakage(rows: list[dict[str, Any]]) -> dict[str, int]:
    """The per-row-dict leakage that finalize used before it streamed."""
    split_of = {r["key"]: r["split"] for r in rows}
    parents = sum(1 for r in rows if r["parent_key"] and split_of.get(r["parent_key"], r["split"]) != r["split"])
    splits_by_hash: dict[str, set[str]] = {}
    for r in rows:
        splits_by_hash.setdefault(r["sha256"], set()).add(r["split"])
    return {"parents_across_splits": parents, "hashes_across_splits": sum(len(s) > 1 for s in splits_by_hash.values())}


def tally_of(table: pa.Table, chunk: int, probe_rows: int = 100_000) -> ManifestTally:
    tally = ManifestTally(probe_rows=probe_rows)
    for start in range(0, table.num_rows, chunk):
        tally.add(table.slice(start, chunk).select(list(TALLY_COLUMNS)))
    return tally


def test_streamed_figures_equal_the_per_row_reference_on_a_built_corpus(tiny_corpus: Path) -> None:
    table = pq.read_table(Layout(tiny_corpus).manifest)
    rows = table.to_pylist()
    recorded = json.loads(Layout(tiny_corpus).index.read_text())
    expected_counts = reference_counts(rows)
    assert expected_counts["all"]["total"] == 28
    for chunk in (1, 5, 28):  # shard by shard or row group by row group: the same figures
        tally = tally_of(table, chunk)
        assert tally.samples == 28
        assert tally.counts() == expected_counts == recorded["counts"]
        assert tally.leakage() == reference_leakage(rows) == recorded["leakage"]
        assert tally.bias_probe() == bias_probe(table.select(list(PROBE_COLUMNS))) == recorded["bias_probe"]
        assert "sample" not in tally.bias_probe()


def _row(key: str, split: str, label: str, sha: str, parent: str | None = None, generator: str | None = None) -> dict:
    return {
        "key": key,
        "split": split,
        "label": label,
        "kind": "real" if generator is None else "text2image",
        "generator": generator,
        "parent_key": parent,
        "sha256": sha,
        "width": 32,
        "height": 32,
        "bytes": 1000 + len(key) * 7 + (50 if label == "fake" else 0),
        "format": "png",
        "quality": -1,
    }


def test_leakage_counts_parents_and_hashes_across_splits_exactly() -> None:
    rows = [
        _row("a", "train", "real", "h1"),
        _row("b", "test", "fake", "h2", parent="a", generator="g"),  # parent in another split
        _row("c", "train", "fake", "h3", parent="a", generator="g"),  # same split
        _row("d", "val", "fake", "h4", parent="zz", generator="g"),  # parent absent: same split
        _row("e", "val", "real", "h1"),  # h1 in train and val
        _row("f", "train", "real", "h3"),  # h3 twice in train only
        _row("g", "test", "real", "h5", parent=""),
    ]
    table = pa.Table.from_pylist(rows)
    expected = reference_leakage(rows)
    assert expected == {"parents_across_splits": 1, "hashes_across_splits": 1}
    assert tally_of(table, 2).leakage() == expected
    assert tally_of(table, 2).orphan() == ("d", "zz")
    assert tally_of(table, 3).counts() == reference_counts(rows)


def test_the_probe_sample_is_bounded_and_does_not_depend_on_arrival_order() -> None:
    rows = [_row(f"k{i:03d}", "train", "fake" if i % 2 else "real", f"{(i * 37) % 101:064x}") for i in range(60)]
    table = pa.Table.from_pylist(rows)
    whole = tally_of(table, 60, probe_rows=20).bias_probe()
    assert whole["sample"] == {"rows": 20, "of": 60}
    assert tally_of(table, 7, probe_rows=20).bias_probe() == whole
    # The sample: the 20 rows with the smallest image hash, fitted in manifest order.
    chosen = sorted(rows, key=lambda r: (r["sha256"], r["key"]))[:20]
    chosen.sort(key=lambda r: rows.index(r))
    expected = bias_probe(pa.Table.from_pylist(chosen).select(list(PROBE_COLUMNS)))
    assert {k: v for k, v in whole.items() if k != "sample"} == expected


def test_finalize_writes_row_groups_without_one_whole_table(tiny_corpus: Path, tmp_path: Path, monkeypatch) -> None:
    """Refinalizing the built corpus's shard states with small row groups gives the same rows and index figures."""
    import shutil

    out = tmp_path / "out"
    shutil.copytree(tiny_corpus, out)
    recorded = json.loads(Layout(out).index.read_text())
    before = pq.read_table(Layout(out).manifest)
    states = [(s["split"], Layout(out).shard_state(*_parse(s["path"]))) for s in recorded["shards"]]
    monkeypatch.setattr(index_module, "ROW_GROUP_ROWS", 5)
    monkeypatch.setattr(index_module, "READ_AHEAD", 2)
    concatenated = pa.concat_tables
    monkeypatch.setattr(pa, "concat_tables", lambda tables, **kw: _no_whole_table(concatenated(tables, **kw)))
    index = index_module.finalize(
        out, recorded["name"], recorded["spec_sha256"], recorded["image_policy"], recorded["members"], states
    )
    after = pq.ParquetFile(Layout(out).manifest)
    assert after.num_row_groups > 2
    assert after.read().equals(before)
    for field in ("samples", "rejects", "counts", "leakage", "bias_probe", "shards"):
        assert index[field] == recorded[field], field


def _no_whole_table(table: pa.Table) -> pa.Table:
    assert table.num_rows < 28 or table.num_columns <= len(TALLY_COLUMNS) + 1, "finalize concatenated every row"
    return table


def _parse(path: str) -> tuple[str, int]:
    from forgeset.manifests.layout import parse_shard_path

    parsed = parse_shard_path(path)
    assert parsed is not None
    return parsed
