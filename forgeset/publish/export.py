"""`forgeset export`: the corpus in the folder layouts detector code reads, as byte copies.

Nothing is re-encoded: each file is the exact member stored in the shard (its sha256 equals the
manifest's), so an export keeps the corpus's one format/size policy.

- cnndetection: {split}/{generator}/{0_real,1_fake}/KEY.png, the layout of CNNDetection, UnivFD,
  NPR and most detector repositories. Each generator folder's 0_real holds all reals of that split
  (hard links, so no extra space): per-generator evaluation then compares against the same reals.
  The held-out split has no reals of its own; its generator folders take the test split's reals.
- imagefolder: {split}/KEY.png with {split}/metadata.jsonl (file_name, label and every manifest
  column, typed as in KEY.json so every split infers the same features) for
  `datasets.load_dataset("imagefolder", data_dir=DIR)`; masks under {split}/masks/, referenced by
  a `mask_file_name` column so `datasets` loads them as a `mask` image column.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from forgeset.manifests import layout
from forgeset.manifests.corpus import Corpus

FORMATS = ("cnndetection", "imagefolder")


# The folder of a fake that no generator made: a real relabeled as fake during curation.
RELABELED_FOLDER = "relabeled"


def _fake_folder(row: dict) -> str:
    """The generator folder a fake goes in (cnndetection layout)."""
    return str(row["generator"] or RELABELED_FOLDER)


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def export_corpus(out_dir: Path, target: Path, layout_name: str) -> dict[str, int]:
    """Write `out_dir` into `target` in `layout_name`; return file counts per folder (relative path).

    The corpus is opened (and validated) before anything is written; every path is joined with
    `path_inside`, so no name from the corpus can place a file outside `target`.
    """
    if layout_name not in FORMATS:
        raise ValueError(f"unknown export format {layout_name!r}; choose one of {', '.join(FORMATS)}")
    corpus = Corpus.open(out_dir)
    inside = corpus.path_inside
    counts: dict[str, int] = {}
    if layout_name == "cnndetection":
        folders_by_real_split: dict[str, set[tuple[str, str]]] = {}
        for row in corpus.rows:
            if row["label"] == "fake":
                real_split = layout.REALS_FROM.get(row["split"], row["split"])
                folders_by_real_split.setdefault(real_split, set()).add((row["split"], _fake_folder(row)))
        for sample in corpus.iter_samples():
            row, ext = sample.row, sample.image_member
            name = f"{sample.key}.{ext}"
            if row["label"] == "fake":
                folder = f"{row['split']}/{_fake_folder(row)}/1_fake"
                _write(inside(target, row["split"], _fake_folder(row), "1_fake", name), sample.image)
                counts[folder] = counts.get(folder, 0) + 1
                continue
            first: Path | None = None
            for split, generator in sorted(folders_by_real_split.get(row["split"], {(row["split"], "real")})):
                folder = f"{split}/{generator}/0_real"
                path = inside(target, split, generator, "0_real", name)
                if first is None:
                    _write(path, sample.image)
                    first = path
                else:
                    path.parent.mkdir(parents=True, exist_ok=True)
                    os.link(first, path)
                counts[folder] = counts.get(folder, 0) + 1
        return counts
    metadata: dict[str, list[dict]] = {}
    for sample in corpus.iter_samples():
        split, ext = sample.split, sample.image_member
        _write(inside(target, split, f"{sample.key}.{ext}"), sample.image)
        entry = {"file_name": f"{sample.key}.{ext}", **sample.member_row}
        if sample.mask is not None:  # a localized corpus: every sample has a mask (all-zero when unedited)
            mask_name = f"{sample.key}.{layout.MASK_EXTENSION}"
            _write(inside(target, split, layout.MASKS_DIR, mask_name), sample.mask)
            entry["mask_file_name"] = f"{layout.MASKS_DIR}/{mask_name}"
        metadata.setdefault(split, []).append(entry)
        counts[split] = counts.get(split, 0) + 1
    for split, entries in metadata.items():
        entries.sort(key=lambda e: e["key"])
        lines = [json.dumps(entry, sort_keys=True, ensure_ascii=False) for entry in entries]
        inside(target, split, "metadata.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return counts
