"""Assemble manifest.parquet, rejects.parquet and index.json from finished shards (index last).

index.json vouches for every file of the corpus: the sha256 and size of the manifest, the rejects,
the resolved spec and each shard, plus `index_sha256`, the sha256 of its own canonical content
(every other field, keys sorted, compact separators), so an edit of any field is detected.
"""

from __future__ import annotations

import hashlib
import json
import platform
import zlib
from collections import Counter
from importlib import metadata
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from forgeset.core.faults import checkpoint
from forgeset.manifests.bias_probe import bias_probe, leakage
from forgeset.manifests.layout import MANIFEST_NAME, REJECTS_NAME, RESOLVED_SPEC_NAME, Layout
from forgeset.manifests.schema import FORMAT_VERSION, MANIFEST_SCHEMA, REJECTS_SCHEMA
from forgeset.manifests.shard_writer import file_sha256, read_marker

# The files besides the shards that index.json vouches for.
VOUCHED_FILES = (MANIFEST_NAME, REJECTS_NAME, RESOLVED_SPEC_NAME)
SELF_HASH_FIELD = "index_sha256"


def index_content_sha256(index: dict[str, Any]) -> str:
    """sha256 of the index's canonical JSON without its own hash field."""
    content = {key: value for key, value in index.items() if key != SELF_HASH_FIELD}
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(canonical.encode("ascii")).hexdigest()


def file_entry(path: Path) -> dict[str, Any]:
    """What the index records of a file: its size and sha256."""
    return {"bytes": path.stat().st_size, "sha256": file_sha256(path)}


_LIBRARIES = (
    "forgeset",
    "torch",
    "diffusers",
    "transformers",
    "safetensors",
    "pillow",
    "numpy",
    "webdataset",
    "pyarrow",
    "ray",
    "scikit-image",
)


def library_versions() -> dict[str, str]:
    """Versions that decide the output bytes (zlib decides PNG bytes), without importing torch."""
    versions = {"python": platform.python_version(), "zlib": zlib.ZLIB_RUNTIME_VERSION}
    for name in _LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def count_table(manifest: pa.Table) -> dict[str, Any]:
    """Sample counts overall and per split, by label, kind and generator."""
    rows = manifest.select(["split", "label", "kind", "generator"]).to_pylist()

    def tally(subset: list[dict]) -> dict[str, Any]:
        return {
            "total": len(subset),
            "label": dict(sorted(Counter(r["label"] for r in subset).items())),
            "kind": dict(sorted(Counter(r["kind"] for r in subset).items())),
            "generator": dict(sorted(Counter(r["generator"] or "(real)" for r in subset).items())),
        }

    splits = sorted({r["split"] for r in rows})
    return {"all": tally(rows), "splits": {s: tally([r for r in rows if r["split"] == s]) for s in splits}}


def write_atomically(path: Path, text: str) -> None:
    """Write via a temporary file and rename, so a reader never sees half a file."""
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(text, encoding="utf-8")
    temporary.replace(path)


def finalize(
    out_dir: Path,
    spec_name: str,
    spec_sha256: str,
    image_policy: dict[str, Any],
    members: list[str],
    shard_states: list[tuple[str, Path]],
    derived_from: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Concatenate per-shard rows in plan order and write the index; returns the index dict."""
    shards, row_tables, reject_tables = [], [], []
    paths = Layout(out_dir)
    for split, state in shard_states:
        marker = read_marker(state)
        if marker is None:
            raise FileNotFoundError(f"{Layout.marker_file(state)} is missing: shard not finished")
        shards.append(
            {"path": marker.path, "split": split, "count": marker.count, "bytes": marker.bytes, "sha256": marker.sha256}
        )
        row_tables.append(pq.read_table(Layout.rows_file(state), schema=MANIFEST_SCHEMA))
        reject_tables.append(pq.read_table(Layout.rejects_file(state), schema=REJECTS_SCHEMA))
    manifest = pa.concat_tables(row_tables) if row_tables else MANIFEST_SCHEMA.empty_table()
    rejects = pa.concat_tables(reject_tables) if reject_tables else REJECTS_SCHEMA.empty_table()
    pq.write_table(manifest, paths.manifest)
    pq.write_table(rejects, paths.rejects)
    checkpoint("manifest-written")
    rows = manifest.select(
        ["key", "split", "label", "parent_key", "sha256", "width", "height", "bytes", "format", "quality"]
    ).to_pylist()
    index = {
        "format_version": FORMAT_VERSION,
        "name": spec_name,
        "spec_sha256": spec_sha256,
        "image_policy": image_policy,
        "members": members,
        "libraries": library_versions(),
        "samples": manifest.num_rows,
        "rejects": rejects.num_rows,
        "counts": count_table(manifest),
        "leakage": leakage(rows),
        "bias_probe": bias_probe(rows),
        "shards": shards,
        "files": {name: file_entry(out_dir / name) for name in VOUCHED_FILES},
    }
    if derived_from:
        index["derived_from"] = derived_from
    index[SELF_HASH_FIELD] = index_content_sha256(index)
    write_atomically(paths.index, json.dumps(index, indent=2, sort_keys=False) + "\n")
    checkpoint("index-written")
    return index
