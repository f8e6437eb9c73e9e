"""Base of the baseline detectors: a torch module from images in [0, 1] to a fake logit.

Every detector is differentiable end to end (so any of them can be an attack surrogate) and is
saved as safetensors with its config in the file's metadata, so a checkpoint reloads alone.
"""

from __future__ import annotations

import hashlib
import json
from abc import ABC, abstractmethod
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from pydantic import Field

from forgeset.core.registry import Registry
from forgeset.core.strict_model import StrictModel
from forgeset.detectors.data import Batch, Samples

# Images per forward pass when scoring or embedding.
SCORE_BATCH = 128


class DetectorParams(StrictModel):
    """Training settings every detector has."""

    type: str
    epochs: int = Field(6, ge=1, le=200)
    batch_size: int = Field(32, ge=1)
    lr: float = Field(1e-3, gt=0)
    seed: int = 0


class Detector(ABC):
    """Wraps a torch module; `fit` trains it, `scores` gives P(fake) per image."""

    Params: ClassVar[type[DetectorParams]]
    # State under this prefix (a frozen backbone) is not saved; the checkpoint reloads it by id.
    frozen_prefix: ClassVar[str | None] = None
    # Traits read by validate, the CLI and curation, so that no module outside detectors/ names one:
    # it needs `--backbone`; its place in the default `--detectors` list (None: not a default);
    # its preference as the source of curation embeddings (lower first).
    needs_backbone: ClassVar[bool] = False
    default_rank: ClassVar[int | None] = None
    embedding_rank: ClassVar[int] = 99

    def __init__(self, params: DetectorParams, size: int) -> None:
        import torch

        self.params = params
        self.size = size
        # Initial weights depend on the seed alone, not on what ran before in this process.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(params.seed)
            self.module: Any = self.build()

    @abstractmethod
    def build(self) -> Any:
        """The torch module (images N x 3 x H x W in [0, 1] -> logits N)."""

    @abstractmethod
    def fit(self, train: Samples, val: Samples | None, progress: Any = None) -> dict[str, Any]:
        """Train on `train`, select on `val` (both read batch by batch); returns a training log."""

    def localize(self, images: Any) -> Any | None:
        """Per-pixel evidence maps (N x H x W, larger = more likely edited), if the detector has them."""
        return None

    def logits(self, images: Any) -> Any:
        """Differentiable logits for a float tensor batch."""
        return self.module(images)

    def scores(self, images: np.ndarray, batch: int = SCORE_BATCH) -> np.ndarray:
        """P(fake) for uint8 N x H x W x 3 images."""
        import torch

        self.module.eval()
        out = []
        with torch.no_grad():
            for start in range(0, len(images), batch):
                tensor = to_tensor(images[start : start + batch])
                out.append(torch.sigmoid(self.module(tensor)).numpy())
        return np.concatenate(out) if out else np.zeros(0)

    def scored_batches(self, samples: Samples, batch: int = SCORE_BATCH) -> Iterator[tuple[Batch, np.ndarray]]:
        """Each batch of `samples` with its P(fake) scores (the batch is dropped after use)."""
        for part in samples.batches(batch):
            yield part, self.scores(part.images, batch)

    def labels_and_scores(self, samples: Samples, batch: int = SCORE_BATCH) -> tuple[np.ndarray, np.ndarray]:
        """Labels and P(fake) of every sample, in the samples' order."""
        labels, scores = [np.zeros(0, np.int64)], [np.zeros(0, np.float32)]
        for part, part_scores in self.scored_batches(samples, batch):
            labels.append(part.labels)
            scores.append(part_scores)
        return np.concatenate(labels), np.concatenate(scores)

    def embedded(self, samples: Samples, batch: int = SCORE_BATCH) -> tuple[np.ndarray, np.ndarray]:
        """Features (N x D) and labels of every sample: small vectors, never the pixels."""
        features, labels = [], []
        for part in samples.batches(batch):
            features.append(self.embeddings(part.images, batch))
            labels.append(part.labels)
        if not features:
            raise ValueError("no training samples")
        return np.concatenate(features), np.concatenate(labels)

    def embeddings(self, images: np.ndarray, batch: int = SCORE_BATCH) -> np.ndarray:
        """The features the head sees (N x D), for similarity search and curation."""
        import torch

        self.module.eval()
        with torch.no_grad():
            return np.concatenate(
                [self.module.features(to_tensor(images[i : i + batch])).numpy() for i in range(0, len(images), batch)]
            )

    def trained_state(self) -> dict[str, Any]:
        """What a checkpoint stores; detectors on a frozen backbone leave the backbone out (reloaded by id)."""
        state = self.module.state_dict()
        return {k: v for k, v in state.items() if not self.frozen_prefix or not k.startswith(self.frozen_prefix)}

    def save(self, path: Path) -> str:
        """Write safetensors (weights + config metadata); return the file's sha256."""
        from safetensors.torch import save_file

        config = {"type": self.params.type, "params": self.params.model_dump(mode="json"), "size": self.size}
        state = {k: v.detach().contiguous() for k, v in self.trained_state().items()}
        path.parent.mkdir(parents=True, exist_ok=True)
        save_file(state, str(path), metadata={"forgeset_detector": json.dumps(config)})
        return hashlib.sha256(path.read_bytes()).hexdigest()


detectors: Registry = Registry("detector")


def default_detectors() -> list[str]:
    """The detectors `validate` trains when none are named, in their default order."""
    ranks = {name: detectors.get(name).default_rank for name in detectors.names()}
    return sorted((name for name, rank in ranks.items() if rank is not None), key=lambda name: ranks[name])


def by_embedding_preference(names: list[str]) -> list[str]:
    """Detector names, the preferred source of curation embeddings first (unknown names last)."""
    known = set(detectors.names())
    return sorted(names, key=lambda n: (detectors.get(n).embedding_rank if n in known else 100, n))


def to_tensor(images: np.ndarray) -> Any:
    """uint8 N x H x W x 3 -> float N x 3 x H x W in [0, 1]."""
    import torch

    return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float() / 255.0


def load_detector(path: Path) -> Detector:
    """Rebuild a detector from a checkpoint written by `Detector.save`."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata() or {}
    if "forgeset_detector" not in metadata:
        raise ValueError(f"{path} is not a forgeset detector checkpoint")
    config = json.loads(metadata["forgeset_detector"])
    detector_cls = detectors.get(config["type"])
    detector = detector_cls(detector_cls.Params(**config["params"]), config["size"])
    state = load_file(str(path))
    missing, unexpected = detector.module.load_state_dict(state, strict=False)
    expected_missing = set(detector.module.state_dict()) - set(detector.trained_state())
    if unexpected or set(missing) != expected_missing:
        raise ValueError(
            f"{path} does not match a {config['type']} detector (missing {sorted(missing)[:3]}, "
            f"unexpected {sorted(unexpected)[:3]})"
        )
    detector.module.eval()
    return detector
