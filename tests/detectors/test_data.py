"""The streamed corpus: index order for evaluation, a seeded shuffle for training, shards split between workers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from forgeset.detectors.data import CorpusStream, load_corpus
from forgeset.manifests.corpus import Corpus


def _keys(stream: CorpusStream, epoch: int = 0, batch: int = 4) -> list[str]:
    return [row["key"] for part in stream.batches(batch, epoch) for row in part.rows]


def test_unshuffled_stream_is_the_in_memory_split_in_index_order(tiny_corpus: Path) -> None:
    corpus = Corpus.open(tiny_corpus)
    loaded = load_corpus(corpus)
    for split in corpus.splits:
        parts = list(CorpusStream(corpus, [split], with_masks=True).batches(5))
        assert [len(p.labels) for p in parts[:-1]] == [5] * (len(parts) - 1)
        assert np.array_equal(np.concatenate([p.images for p in parts]), loaded[split].images)
        assert np.array_equal(np.concatenate([p.labels for p in parts]), loaded[split].labels)
        expected = corpus.table.filter(corpus.table["split"].to_numpy(zero_copy_only=False) == split)
        assert [r["key"] for p in parts for r in p.rows] == [r["key"] for r in loaded[split].rows]
        assert sorted(r["key"] for r in loaded[split].rows) == sorted(expected["key"].to_pylist())


def test_shuffle_is_seeded_per_epoch_and_keeps_every_sample(tiny_corpus: Path) -> None:
    corpus = Corpus.open(tiny_corpus)
    plain = _keys(CorpusStream(corpus, ["train"]))
    shuffled = CorpusStream(corpus, ["train"], shuffle=True, seed=5, buffer=4)
    first = _keys(shuffled, epoch=0)
    assert first == _keys(shuffled, epoch=0)  # the same seed and epoch: the same order
    assert sorted(first) == sorted(plain) and len(set(first)) == len(plain) > 8
    orders = {tuple(_keys(shuffled, epoch=e)) for e in range(4)}
    assert len(orders) > 1 and tuple(plain) not in orders
    assert _keys(CorpusStream(corpus, ["train"], shuffle=True, seed=6, buffer=4)) != first


def test_workers_split_the_shards_and_filters_hold(tiny_corpus: Path) -> None:
    corpus = Corpus.open(tiny_corpus)
    assert len(corpus.shards("train")) >= 2
    plain = _keys(CorpusStream(corpus, ["train"]))
    two = _keys(CorpusStream(corpus, ["train"], workers=2))
    assert sorted(two) == sorted(plain) and len(two) == len(plain)
    reals = CorpusStream(corpus, ["train", "test"]).filtered(lambda row: row["label"] == "real")
    labels = np.concatenate([part.labels for part in reals.batches(8)])
    expected = sum(1 for r in corpus.rows if r["label"] == "real" and r["split"] in ("train", "test"))
    assert len(labels) == expected and not labels.any()


def test_shuffle_buffer_holds_at_most_its_size(tiny_corpus: Path) -> None:
    """Memory is bounded by the buffer: the first item comes out after buffer + 1 are read."""
    stream = CorpusStream(Corpus.open(tiny_corpus), ["train"], shuffle=True, buffer=3)
    read: list[int] = []

    def counted() -> Iterator[int]:
        for i in range(100):
            read.append(i)
            yield i

    mixed = stream.mixed(counted(), epoch=0, worker=0)
    first = next(mixed)
    assert len(read) == 4
    assert sorted([first, *mixed]) == list(range(100))


def test_workers_started_by_spawn_read_the_same_samples(tiny_corpus: Path) -> None:
    """The dataset is importable by name and pickles, so spawn/forkserver workers (macOS, Python 3.14) work."""
    import pickle

    from torch.utils.data import DataLoader

    from forgeset.detectors.data import _collate

    stream = CorpusStream(Corpus.open(tiny_corpus), ["train"])
    dataset = pickle.loads(pickle.dumps(stream.dataset(0)))
    loader = DataLoader(dataset, batch_size=4, collate_fn=_collate, num_workers=2, multiprocessing_context="spawn")
    spawned = [row["key"] for part in loader for row in part.rows]
    assert sorted(spawned) == sorted(_keys(stream)) and len(spawned) == len(_keys(stream))
