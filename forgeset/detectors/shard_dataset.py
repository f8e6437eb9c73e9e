"""The torch IterableDataset over a CorpusStream's shards: each DataLoader worker reads every Nth shard.

A module of its own so that torch is imported only when a dataset is made (the CLI starts without
it) and so that the class is importable by name: DataLoader workers started by spawn or forkserver
unpickle it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from torch.utils.data import IterableDataset, get_worker_info

if TYPE_CHECKING:
    from forgeset.detectors.data import CorpusStream


class ShardDataset(IterableDataset):
    """One epoch of `stream`: worker w of n takes shards w, w+n, ... in the epoch's shard order."""

    def __init__(self, stream: CorpusStream, epoch: int) -> None:
        super().__init__()
        self.stream = stream
        self.epoch = epoch

    def __iter__(self) -> Iterator[Any]:
        info = get_worker_info()
        worker, count = (info.id, info.num_workers) if info else (0, 1)
        items = self.stream.samples(self.stream.shards(self.epoch)[worker::count])
        return self.stream.mixed(items, self.epoch, worker) if self.stream.shuffle else items
