"""Detector input: a corpus streamed shard by shard (training and evaluation never hold it in memory).

`CorpusStream` is a torch IterableDataset over a corpus's shards: each DataLoader worker reads its
own shards, decodes on the fly and, for training, mixes samples through a seeded shuffle buffer,
so memory is bounded by the buffer and a batch, not by the corpus. `CorpusSplit` (load_corpus)
holds a small split in memory for callers that need random access (tests, curation, attacks);
both give `batches(batch_size, epoch)`, which is all training and evaluation ask for.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from PIL import Image

from forgeset.manifests.corpus import Corpus, IndexShard
from forgeset.manifests.schema import LABELS

# Samples held by the training shuffle buffer: at 256 px about 100 MB of decoded pixels.
SHUFFLE_BUFFER = 512


@dataclass
class Batch:
    """Decoded samples: images N x H x W x 3 uint8, masks N x H x W (zero when unedited), labels (1 = fake), rows."""

    images: np.ndarray
    masks: np.ndarray
    labels: np.ndarray
    rows: list[dict[str, Any]]


class Samples(Protocol):
    """What training and evaluation read: batches in a deterministic order for a given epoch."""

    def batches(self, batch_size: int, epoch: int = 0) -> Iterator[Batch]:
        """The samples in batches of at most `batch_size`."""
        ...


@dataclass
class CorpusSplit:
    """A split held in memory (small corpora only): images, masks, labels (1 = fake), rows."""

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

    def batches(self, batch_size: int, epoch: int = 0) -> Iterator[Batch]:
        """The samples in stored order (an in-memory split is not shuffled)."""
        for start in range(0, len(self.labels), batch_size):
            end = start + batch_size
            yield Batch(self.images[start:end], self.masks[start:end], self.labels[start:end], self.rows[start:end])


def _decode(data: bytes, size: int, grey: bool = False) -> np.ndarray:
    image = Image.open(io.BytesIO(data)).convert("L" if grey else "RGB")
    if image.size != (size, size):  # only corpora with per-label size overrides
        image = image.resize((size, size), Image.Resampling.NEAREST if grey else Image.Resampling.BILINEAR)
    return np.asarray(image)


RowFilter = Callable[[dict[str, Any]], bool]


def _collate(items: list[tuple[np.ndarray, np.ndarray, int, dict[str, Any]]]) -> Batch:
    return Batch(
        np.stack([item[0] for item in items]),
        np.stack([item[1] for item in items]),
        np.array([item[2] for item in items], dtype=np.int64),
        [item[3] for item in items],
    )


class CorpusStream:
    """Samples of some splits of a corpus (optionally filtered by row), decoded shard by shard.

    `shuffle=True` visits shards in a seeded order per epoch and mixes samples through a seeded
    buffer of `buffer` samples; otherwise samples come in index order (shard order, key order in
    a shard), which evaluation relies on. With `workers` > 0 the DataLoader's workers split the
    shards between them (worker i reads shards i, i + workers, ...).
    """

    def __init__(
        self,
        corpus: Corpus,
        splits: Sequence[str],
        keep: RowFilter | None = None,
        *,
        shuffle: bool = False,
        seed: int = 0,
        buffer: int = SHUFFLE_BUFFER,
        workers: int = 0,
        with_masks: bool = False,
    ) -> None:
        self.corpus = corpus
        self.splits = list(splits)
        self.keep = keep
        self.shuffle = shuffle
        self.seed = seed
        self.buffer = buffer
        self.workers = workers
        self.with_masks = with_masks

    def filtered(self, keep: RowFilter) -> CorpusStream:
        """The same stream restricted to rows where `keep` (and this stream's filter) holds."""
        previous = self.keep
        return CorpusStream(
            self.corpus,
            self.splits,
            keep if previous is None else (lambda row: previous(row) and keep(row)),
            shuffle=self.shuffle,
            seed=self.seed,
            buffer=self.buffer,
            workers=self.workers,
            with_masks=self.with_masks,
        )

    def shards(self, epoch: int) -> list[IndexShard]:
        """The shards read in `epoch`, in reading order."""
        shards = [shard for split in self.splits for shard in self.corpus.shards(split)]
        if self.shuffle:
            order = np.random.default_rng((self.seed, epoch)).permutation(len(shards))
            shards = [shards[i] for i in order]
        return shards

    def samples(self, shards: Sequence[IndexShard]) -> Iterator[tuple[np.ndarray, np.ndarray, int, dict[str, Any]]]:
        """(image, mask, label, row) of every kept sample of `shards`, decoded one at a time."""
        size = self.corpus.policy.size
        blank = np.zeros((size, size), np.uint8)
        for shard in shards:
            for sample in self.corpus.iter_samples_of(shard):
                if self.keep is not None and not self.keep(sample.row):
                    continue
                mask = sample.mask if self.with_masks else None
                yield (
                    _decode(sample.image, size),
                    _decode(mask, size, grey=True) if mask else blank,
                    LABELS[sample.row["label"]],
                    sample.member_row,
                )

    def mixed(self, items: Iterator[Any], epoch: int, worker: int) -> Iterator[Any]:
        """A seeded shuffle buffer: each item swaps with a random held one once the buffer is full."""
        rng = np.random.default_rng((self.seed, epoch, worker, 1))
        held: list[Any] = []
        for item in items:
            if len(held) < self.buffer:
                held.append(item)
                continue
            slot = int(rng.integers(len(held)))
            held[slot], item = item, held[slot]
            yield item
        rng.shuffle(held)
        yield from held

    def dataset(self, epoch: int) -> Any:
        """The torch IterableDataset of `epoch` (each worker reads its share of the shards)."""
        from forgeset.detectors.shard_dataset import ShardDataset

        return ShardDataset(self, epoch)

    def batches(self, batch_size: int, epoch: int = 0) -> Iterator[Batch]:
        """Decoded batches through a torch DataLoader (workers as configured)."""
        from torch.utils.data import DataLoader

        loader = DataLoader(self.dataset(epoch), batch_size=batch_size, collate_fn=_collate, num_workers=self.workers)
        yield from loader


def load_corpus(out_dir: Path | Corpus) -> dict[str, CorpusSplit]:
    """Every split of a corpus in memory (small corpora: tests, curation), in index order."""
    corpus = out_dir if isinstance(out_dir, Corpus) else Corpus.open(out_dir)
    out: dict[str, CorpusSplit] = {}
    for split in corpus.splits:
        parts = list(CorpusStream(corpus, [split], with_masks=True).samples(corpus.shards(split)))
        out[split] = CorpusSplit(
            np.stack([p[0] for p in parts]),
            np.stack([p[1] for p in parts]),
            np.array([p[2] for p in parts], dtype=np.int64),
            [p[3] for p in parts],
        )
    return out
