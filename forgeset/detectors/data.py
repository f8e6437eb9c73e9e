"""Load a built corpus into memory for detector training (small corpora; shards read once)."""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from forgeset.manifests.corpus import Corpus
from forgeset.manifests.schema import LABELS


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
        image = image.resize((size, size), Image.Resampling.NEAREST if grey else Image.Resampling.BILINEAR)
    return np.asarray(image)


def load_corpus(out_dir: Path | Corpus) -> dict[str, CorpusSplit]:
    """Every split of a corpus, samples in key order of their shards; rows as KEY.json holds them."""
    corpus = out_dir if isinstance(out_dir, Corpus) else Corpus.open(out_dir)
    size = corpus.policy.size
    splits: dict[str, dict[str, list]] = {}
    for sample in corpus.iter_samples():
        bucket = splits.setdefault(sample.split, {"images": [], "masks": [], "labels": [], "rows": []})
        bucket["images"].append(_decode(sample.image, size))
        mask = sample.mask
        bucket["masks"].append(_decode(mask, size, grey=True) if mask else np.zeros((size, size), np.uint8))
        bucket["labels"].append(LABELS[sample.row["label"]])
        bucket["rows"].append(sample.member_row)
    return {
        name: CorpusSplit(np.stack(b["images"]), np.stack(b["masks"]), np.array(b["labels"]), b["rows"])
        for name, b in splits.items()
    }
