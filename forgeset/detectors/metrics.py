"""Detection metrics (scikit-learn): AUC with a bootstrap 95 % interval, AP, accuracy at 0.5, EER."""

from __future__ import annotations

from typing import Any

import numpy as np

# A figure on fewer samples of either class than this is flagged as unreliable.
MIN_CLASS_SAMPLES = 30
BOOTSTRAP_RESAMPLES = 1000


def auc_interval(
    labels: np.ndarray, scores: np.ndarray, seed: int = 0, resamples: int = BOOTSTRAP_RESAMPLES
) -> tuple[float, float]:
    """Percentile 95 % interval of ROC AUC over a seeded bootstrap stratified by class.

    Written with numpy rather than calling roc_auc_score per resample: the scores are ranked once
    and each resample is an O(n) weighted count (ties count one half), about 50x faster at 100k.
    """
    positive = np.asarray(labels).astype(bool)
    _, rank = np.unique(np.asarray(scores), return_inverse=True)
    fakes, reals, bins = rank[positive], rank[~positive], int(rank.max()) + 1
    rng = np.random.default_rng(seed)
    aucs = np.empty(resamples)
    for i in range(resamples):
        p = np.bincount(fakes[rng.integers(0, len(fakes), len(fakes))], minlength=bins)
        q = np.bincount(reals[rng.integers(0, len(reals), len(reals))], minlength=bins)
        below = np.cumsum(q) - q
        aucs[i] = float((p * (below + 0.5 * q)).sum()) / (len(fakes) * len(reals))
    low, high = np.percentile(aucs, [2.5, 97.5])
    return round(float(low), 4), round(float(high), 4)


def detection_metrics(labels: np.ndarray, scores: np.ndarray, seed: int = 0) -> dict[str, Any]:
    """Metrics of P(fake) `scores` against `labels` (1 = fake); ranking metrics need both classes.

    `n_real`/`n_fake` stand beside every figure; `few` flags fewer than MIN_CLASS_SAMPLES of a class.
    """
    from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

    labels = np.asarray(labels)
    predicted = np.asarray(scores) >= 0.5
    out: dict[str, Any] = {
        "n": len(labels),
        "n_real": int((labels == 0).sum()),
        "n_fake": int(labels.sum()),
        "few": bool(0 < (labels == 0).sum() < MIN_CLASS_SAMPLES or 0 < labels.sum() < MIN_CLASS_SAMPLES),
        "accuracy": round(float((predicted == labels).mean()), 4) if len(labels) else None,
        "real_accuracy": round(float((~predicted[labels == 0]).mean()), 4) if (labels == 0).any() else None,
        "fake_accuracy": round(float(predicted[labels == 1].mean()), 4) if (labels == 1).any() else None,
        "auc": None,
        "auc_ci": None,
        "ap": None,
        "eer": None,
    }
    if len(set(labels.tolist())) == 2:
        fpr, tpr, _ = roc_curve(labels, scores)
        fnr = 1 - tpr
        at = int(np.nanargmin(np.abs(fnr - fpr)))
        out.update(
            auc=round(float(roc_auc_score(labels, scores)), 4),
            auc_ci=list(auc_interval(labels, scores, seed)),
            ap=round(float(average_precision_score(labels, scores)), 4),
            eer=round(float((fpr[at] + fnr[at]) / 2), 4),
        )
    return out


def localization_scores(maps: np.ndarray, masks: np.ndarray) -> dict[str, float]:
    """Mean pixel F1 and IoU of maps thresholded per image with Otsu's method against masks > 0."""
    f1s, ious = localization_per_image(maps, masks)
    return {"f1": round(float(np.mean(f1s)), 4), "iou": round(float(np.mean(ious)), 4), "n": len(f1s)}


def localization_per_image(maps: np.ndarray, masks: np.ndarray) -> tuple[list[float], list[float]]:
    """Pixel F1 and IoU of each map (Otsu threshold) against its mask > 0, for streamed accumulation."""
    from skimage.filters import threshold_otsu

    f1s: list[float] = []
    ious: list[float] = []
    for evidence, mask in zip(maps, masks, strict=True):
        flat = float(np.ptp(evidence)) == 0.0
        predicted = np.zeros(evidence.shape, bool) if flat else evidence > threshold_otsu(evidence)
        truth = mask > 0
        tp = float((predicted & truth).sum())
        fp, fn = float((predicted & ~truth).sum()), float((~predicted & truth).sum())
        f1s.append(2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 1.0)
        ious.append(tp / (tp + fp + fn) if tp + fp + fn else 1.0)
    return f1s, ious
