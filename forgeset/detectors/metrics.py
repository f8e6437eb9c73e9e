"""Detection metrics (scikit-learn): AUC, AP, accuracy at 0.5, per-class accuracy, EER."""

from __future__ import annotations

from typing import Any

import numpy as np


def detection_metrics(labels: np.ndarray, scores: np.ndarray) -> dict[str, Any]:
    """Metrics of P(fake) `scores` against `labels` (1 = fake); ranking metrics need both classes."""
    from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

    labels = np.asarray(labels)
    predicted = np.asarray(scores) >= 0.5
    out: dict[str, Any] = {
        "n": len(labels),
        "n_fake": int(labels.sum()),
        "accuracy": round(float((predicted == labels).mean()), 4) if len(labels) else None,
        "real_accuracy": round(float((~predicted[labels == 0]).mean()), 4) if (labels == 0).any() else None,
        "fake_accuracy": round(float(predicted[labels == 1].mean()), 4) if (labels == 1).any() else None,
        "auc": None,
        "ap": None,
        "eer": None,
    }
    if len(set(labels.tolist())) == 2:
        fpr, tpr, _ = roc_curve(labels, scores)
        fnr = 1 - tpr
        at = int(np.nanargmin(np.abs(fnr - fpr)))
        out.update(
            auc=round(float(roc_auc_score(labels, scores)), 4),
            ap=round(float(average_precision_score(labels, scores)), 4),
            eer=round(float((fpr[at] + fnr[at]) / 2), 4),
        )
    return out


def localization_scores(maps: np.ndarray, masks: np.ndarray) -> dict[str, float]:
    """Mean pixel F1 and IoU of maps thresholded per image with Otsu's method against masks > 0."""
    from skimage.filters import threshold_otsu

    f1s, ious = [], []
    for evidence, mask in zip(maps, masks, strict=True):
        flat = float(np.ptp(evidence)) == 0.0
        predicted = np.zeros(evidence.shape, bool) if flat else evidence > threshold_otsu(evidence)
        truth = mask > 0
        tp = float((predicted & truth).sum())
        fp, fn = float((predicted & ~truth).sum()), float((~predicted & truth).sum())
        f1s.append(2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 1.0)
        ious.append(tp / (tp + fp + fn) if tp + fp + fn else 1.0)
    return {"f1": round(float(np.mean(f1s)), 4), "iou": round(float(np.mean(ious)), 4), "n": len(f1s)}
