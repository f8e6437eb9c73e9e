"""Load a built corpus into memory for detector training (small corpora; shards read once)."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from forgeset.manifests.shard_reader import read_samples


@dataclass
class CorpusSplit:
    """Images (N x H x W x 3 uint8), masks (N x H x W, zero when unedited), labels (1 = fake), rows."""

    images: np.ndarray
    masks: np.ndarray
    labels: np.ndarray
    rows: list[dict]

    def subset(self, keep: np.ndarray) -> CorpusSplit:
        """The samples where `keep` is true."""
        index = np.flatnonzero(keep)
        return CorpusSplit(self.images[index], self.masks[index], self.labels[index], [self.rows[i] for i in index])

    def join(self, other: CorpusSplit) -> CorpusSplit:
        """Both splits' samples."""
        return CorpusSplit(
            np.concatenate([self.images, other.images]),
            np.concatenate([self.masks, other.masks]),
            np.concatenate([self.labels, other.labels]),
            self.rows + other.rows,
        )


def _decode(data: bytes, size: int, grey: bool = False) -> np.ndarray:
    image = Image.open(io.BytesIO(data)).convert("L" if grey else "RGB")
    if image.size != (size, size):  # only corpora with per-label size overrides
        image = image.resize((size, size), Image.NEAREST if grey else Image.BILINEAR)
    return np.asarray(image)


def load_corpus(out_dir: Path) -> dict[str, CorpusSplit]:
    """Every split of `out_dir`, samples in manifest order of their shards."""
    index = json.loads((out_dir / "index.json").read_text())
    size = index["image_policy"]["size"]
    splits: dict[str, dict[str, list]] = {}
    for shard in index["shards"]:
        members = read_samples(out_dir / shard["path"])
        bucket = splits.setdefault(shard["split"], {"images": [], "masks": [], "labels": [], "rows": []})
        for key in sorted(members):
            sample = members[key]
            row = json.loads(sample["json"])
            bucket["images"].append(_decode(sample.get("png") or sample["jpg"], size))
            mask = sample.get("mask.png")
            bucket["masks"].append(_decode(mask, size, grey=True) if mask else np.zeros((size, size), np.uint8))
            bucket["labels"].append(int(sample["cls"]))
            bucket["rows"].append(row)
    return {
        name: CorpusSplit(np.stack(b["images"]), np.stack(b["masks"]), np.array(b["labels"]), b["rows"])
        for name, b in splits.items()
    }
