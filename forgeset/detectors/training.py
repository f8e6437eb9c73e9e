"""Minibatch training for the CNN-based detectors: BCE, Adam, seeded shuffles, best-on-val selection."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import numpy as np

from forgeset.detectors.base import DetectorParams, to_tensor
from forgeset.detectors.data import Samples


def auc_or_none(labels: np.ndarray, scores: np.ndarray) -> float | None:
    """ROC AUC, or None when only one class is present."""
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(labels, scores)) if len(set(labels.tolist())) == 2 else None


def fit_linear_head(
    detector: Any,
    features: np.ndarray,
    labels: np.ndarray,
    regularization: float,
    val: Samples | None,
    progress: Any,
) -> dict[str, Any]:
    """Standardize `features`, fit scikit-learn's logistic regression, copy it into the module.

    The module must have `mean`/`std` buffers and a `head` Linear; returns the one-epoch log.
    """
    import torch
    from sklearn.linear_model import LogisticRegression

    mean, std = features.mean(axis=0), features.std(axis=0) + 1e-6
    model = LogisticRegression(C=regularization, max_iter=2000).fit((features - mean) / std, labels)
    module = detector.module
    with torch.no_grad():
        module.mean.copy_(torch.from_numpy(mean))
        module.std.copy_(torch.from_numpy(std))
        module.head.weight.copy_(torch.from_numpy(model.coef_.astype(np.float32)))
        module.head.bias.copy_(torch.from_numpy(model.intercept_.astype(np.float32)))
    return one_fit_log(detector, val, progress, "fitted")


def val_auc_of(detector: Any, val: Samples | None) -> float | None:
    """AUC of `detector` on the validation samples (None without them or with one class)."""
    if val is None:
        return None
    labels, scores = detector.labels_and_scores(val)
    return auc_or_none(labels, scores) if len(labels) else None


def one_fit_log(detector: Any, val: Samples | None, progress: Any, message: str) -> dict[str, Any]:
    """The training log of a detector fitted in one pass, with its validation AUC."""
    if progress:
        progress(message, 1.0)
    val_auc = val_auc_of(detector, val)
    return {"epochs": [{"epoch": 1, "val_auc": val_auc}], "selected_epoch": 1}


def blur_jpeg_augment(seed: int) -> Callable[[np.ndarray], np.ndarray]:
    """CNNDetection's recipe: Gaussian blur (sigma 0-3) and JPEG (q30-100), each with p=0.5."""
    import albumentations as A  # noqa: N812

    compose = A.Compose(
        [
            A.GaussianBlur(blur_limit=0, sigma_limit=(0.1, 3.0), p=0.5),
            A.ImageCompression(quality_range=(30, 100), p=0.5),
        ],
        seed=seed,
    )
    return lambda batch: np.stack([compose(image=image)["image"] for image in batch])


def train_module(
    module: Any,
    params: DetectorParams,
    train: Samples,
    val: Samples | None,
    augment: Callable[[np.ndarray], np.ndarray] | None,
    detector: Any,
    progress: Callable[[str, float], None] | None = None,
) -> dict[str, Any]:
    """Train `module` on batches of `train` (shuffled by the stream); keep the epoch with the best validation AUC."""
    import torch

    torch.manual_seed(params.seed)
    optimizer = torch.optim.Adam(module.parameters(), lr=params.lr)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    log: list[dict[str, Any]]
    best_auc, best_state, log = -float("inf"), None, []
    for epoch in range(params.epochs):
        module.train()
        losses = []
        for batch in train.batches(params.batch_size, epoch):
            images = augment(batch.images) if augment else batch.images
            logits = module(to_tensor(images))
            loss = loss_fn(logits, torch.from_numpy(batch.labels).float())
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        if not losses:
            raise ValueError("no training samples")
        val_auc = val_auc_of(detector, val)
        log.append({"epoch": epoch + 1, "loss": round(float(np.mean(losses)), 5), "val_auc": val_auc})
        if progress:
            progress(f"epoch {epoch + 1}/{params.epochs}", (epoch + 1) / params.epochs)
        current = val_auc if val_auc is not None else -float(np.mean(losses))
        if current > best_auc:
            best_auc, best_state = current, copy.deepcopy(module.state_dict())
    if best_state is not None:
        module.load_state_dict(best_state)
    module.eval()
    return {
        "epochs": log,
        "selected_epoch": 1
        + max(range(len(log)), key=lambda i: log[i]["val_auc"] if log[i]["val_auc"] is not None else -log[i]["loss"]),
    }
