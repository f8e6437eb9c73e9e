"""`forgeset export`: the corpus in the folder layouts detector code reads, as byte copies.

Nothing is re-encoded: each file is the exact member stored in the shard (its sha256 equals the
manifest's), so an export keeps the corpus's one format/size policy.

- cnndetection: {split}/{generator}/{0_real,1_fake}/KEY.png, the layout of CNNDetection, UnivFD,
  NPR and most detector repositories. Each generator folder's 0_real holds all reals of that split
  (hard links, so no extra space): per-generator evaluation then compares against the same reals.
  test_ood has no reals of its own; its generator folders take the test split's reals.
- imagefolder: {split}/KEY.png with {split}/metadata.jsonl (file_name, label and every manifest
  column, typed as in KEY.json so every split infers the same features) for
  `datasets.load_dataset("imagefolder", data_dir=DIR)`; masks under {split}/masks/, referenced by
  a `mask_file_name` column so `datasets` loads them as a `mask` image column.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pyarrow.parquet as pq

from forgeset.manifests.index import MANIFEST_NAME
from forgeset.manifests.schema import member_fields
from forgeset.manifests.shard_reader import read_members

FORMATS = ("cnndetection", "imagefolder")
# Splits without reals of their own borrow another's for their 0_real folders.
REALS_FROM = {"test_ood": "test"}


def _members(out_dir: Path) -> Iterator[tuple[str, str, bytes]]:
    """(key, extension, bytes) of every image and mask member of every shard."""
    for tar in sorted(out_dir.glob("*/*.tar")):
        for key, ext, data in read_members(tar):
            if ext in ("png", "jpg", "mask.png"):
                yield key, ext, data


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def export_corpus(out_dir: Path, target: Path, layout: str) -> dict[str, int]:
    """Write `out_dir` into `target` in `layout`; return file counts per folder (relative path)."""
    if layout not in FORMATS:
        raise ValueError(f"unknown export format {layout!r}; choose one of {', '.join(FORMATS)}")
    rows = {row["key"]: row for row in pq.read_table(out_dir / MANIFEST_NAME).to_pylist()}
    counts: dict[str, int] = {}
    if layout == "cnndetection":
        folders_by_real_split: dict[str, set[tuple[str, str]]] = {}
        for row in rows.values():
            if row["label"] == "fake":
                real_split = REALS_FROM.get(row["split"], row["split"])
                folders_by_real_split.setdefault(real_split, set()).add((row["split"], row["generator"]))
        for key, ext, data in _members(out_dir):
            if ext == "mask.png":
                continue
            row = rows[key]
            if row["label"] == "fake":
                folder = f"{row['split']}/{row['generator']}/1_fake"
                _write(target / folder / f"{key}.{ext}", data)
                counts[folder] = counts.get(folder, 0) + 1
                continue
            first: Path | None = None
            for split, generator in sorted(folders_by_real_split.get(row["split"], {(row["split"], "real")})):
                folder = f"{split}/{generator}/0_real"
                path = target / folder / f"{key}.{ext}"
                if first is None:
                    _write(path, data)
                    first = path
                else:
                    path.parent.mkdir(parents=True, exist_ok=True)
                    os.link(first, path)
                counts[folder] = counts.get(folder, 0) + 1
        return counts
    metadata: dict[str, list[dict]] = {}
    masked: set[str] = set()
    for key, ext, data in _members(out_dir):
        row = rows[key]
        if ext == "mask.png":
            _write(target / row["split"] / "masks" / f"{key}.png", data)
            masked.add(key)
            continue
        _write(target / row["split"] / f"{key}.{ext}", data)
        entry = {"file_name": f"{key}.{ext}", **member_fields(row)}
        metadata.setdefault(row["split"], []).append(entry)
        counts[row["split"]] = counts.get(row["split"], 0) + 1
    for entries in metadata.values():
        for entry in entries:
            if masked:  # a localized corpus: every sample has a mask (all-zero when unedited)
                entry["mask_file_name"] = f"masks/{entry['key']}.png"
    for split, entries in metadata.items():
        entries.sort(key=lambda e: e["key"])
        lines = [json.dumps(entry, sort_keys=True, ensure_ascii=False) for entry in entries]
        (target / split / "metadata.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return counts
