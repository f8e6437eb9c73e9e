"""`forgeset verify`: check a built corpus against its own index.json and manifest.parquet."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pyarrow.parquet as pq
from PIL import Image

from forgeset.manifests.index import INDEX_NAME, MANIFEST_NAME
from forgeset.manifests.schema import LABELS
from forgeset.manifests.shard_reader import read_members
from forgeset.manifests.shard_writer import file_sha256


class CorpusInvalid(Exception):
    """The first problem found; the message names the shard or sample."""


def _check_sample(shard: str, key: str, members: dict[str, bytes], localized: bool, row: dict | None) -> None:
    where = f"{shard}: sample {key}"
    if row is None:
        raise CorpusInvalid(f"{where} is in the tar but not in the manifest")
    image_ext = "png" if row["format"] == "png" else "jpg"
    expected = {image_ext, "json", "cls"} | ({"mask.png"} if localized else set())
    if set(members) != expected:
        raise CorpusInvalid(f"{where} has members {sorted(members)}, expected {sorted(expected)}")
    size = row["width"]
    image_bytes = members[image_ext]
    if hashlib.sha256(image_bytes).hexdigest() != row["sha256"]:
        raise CorpusInvalid(f"{where}: image sha256 differs from the manifest")
    try:
        with Image.open(io.BytesIO(image_bytes)) as image:
            image.load()
            dims = image.size
    except Exception as err:
        raise CorpusInvalid(f"{where}: image does not decode ({err})") from None
    if dims != (row["width"], row["height"]):
        raise CorpusInvalid(f"{where}: image is {dims[0]}x{dims[1]}, the manifest says {size}x{size}")
    try:
        meta = json.loads(members["json"])
    except ValueError as err:
        raise CorpusInvalid(f"{where}: json member does not parse ({err})") from None
    for field in ("key", "label", "kind", "split", "sha256"):
        if meta.get(field) != row[field]:
            raise CorpusInvalid(f"{where}: json {field}={meta.get(field)!r}, manifest {row[field]!r}")
    if members["cls"] != str(LABELS[row["label"]]).encode():
        raise CorpusInvalid(f"{where}: cls {members['cls']!r} does not match label {row['label']!r}")
    if "mask.png" in members:
        with Image.open(io.BytesIO(members["mask.png"])) as mask:
            if mask.size != dims or mask.mode != "L":
                raise CorpusInvalid(f"{where}: mask is {mask.mode} {mask.size}, expected L {dims}")


def verify_corpus(out_dir: Path, progress: Callable[[int], None] | None = None) -> dict[str, int]:
    """Re-hash every shard, decode every image, check members, labels, keys and counts.

    Raises CorpusInvalid naming the first shard or sample that is wrong; returns totals if all is well.
    """
    index_path = out_dir / INDEX_NAME
    if not index_path.exists():
        raise CorpusInvalid(f"{index_path} is missing: the build did not finish (resume it)")
    index = json.loads(index_path.read_text())
    manifest = pq.read_table(out_dir / MANIFEST_NAME).to_pylist()
    rows = {row["key"]: row for row in manifest}
    if len(rows) != len(manifest):
        raise CorpusInvalid("manifest.parquet has duplicate keys")
    if len(manifest) != index["samples"]:
        raise CorpusInvalid(f"manifest has {len(manifest)} rows, index.json says {index['samples']}")
    orphan = next((r for r in manifest if r["parent_key"] and r["parent_key"] not in rows), None)
    if orphan:
        raise CorpusInvalid(f"sample {orphan['key']}: parent_key {orphan['parent_key']!r} is not in the manifest")
    localized = "mask.png" in index["members"]
    sizes = {index["image_policy"]["size"]} | {
        o["size"] for o in index["image_policy"]["per_label"].values() if o.get("size")
    }
    rows_per_shard = Counter(row["shard"] for row in manifest)
    seen = 0
    for entry in index["shards"]:
        path = out_dir / entry["path"]
        if not path.exists():
            raise CorpusInvalid(f"{entry['path']}: shard is missing")
        if path.stat().st_size != entry["bytes"] or file_sha256(path) != entry["sha256"]:
            raise CorpusInvalid(f"{entry['path']}: sha256 differs from index.json (the shard was altered)")
        samples: dict[str, dict[str, bytes]] = {}
        try:
            for key, ext, data in read_members(path):
                if "." in key or not key:
                    raise CorpusInvalid(f"{entry['path']}: bad key {key!r}")
                samples.setdefault(key, {})[ext] = data
        except tarfile.TarError as err:
            raise CorpusInvalid(f"{entry['path']}: not a readable tar ({err})") from None
        for key, members in samples.items():
            row = rows.get(key)
            _check_sample(entry["path"], key, members, localized, row)
            if row["width"] not in sizes:
                raise CorpusInvalid(
                    f"{entry['path']}: sample {key} is {row['width']} px, the policy allows {sorted(sizes)}"
                )
            if row["shard"] != entry["path"] or row["split"] != entry["split"]:
                raise CorpusInvalid(f"{entry['path']}: sample {key} is listed under {row['shard']}")
        listed = rows_per_shard[entry["path"]]
        if len(samples) != entry["count"] or listed != entry["count"]:
            raise CorpusInvalid(
                f"{entry['path']}: holds {len(samples)} samples, manifest lists {listed}, "
                f"index.json says {entry['count']}"
            )
        seen += len(samples)
        if progress:
            progress(len(samples))
    if seen != len(manifest):
        raise CorpusInvalid(f"shards hold {seen} samples, manifest lists {len(manifest)}")
    return {"shards": len(index["shards"]), "samples": seen}
