"""The bias probe: can metadata alone (no pixels) tell real from fake?

A logistic regression on width, height, file size, format and encoder quality, scored by
5-fold cross-validated ROC AUC. Near 0.5 means the container says nothing about the label; a
high AUC means a detector could learn the container (GenImage's JPEG-real / PNG-fake shortcut).
Each attribute's own AUC names what leaks.
"""

from __future__ import annotations

from typing import Any

import numpy as np

FEATURES = ("width", "height", "file_size", "format", "quality")
# On equal AUC, name the cause before its consequence: a format or quality choice also moves file size.
_BLAME_ORDER = ("format", "quality", "width", "height", "file_size")


def _features(rows: list[dict[str, Any]]) -> np.ndarray:
    return np.array(
        [[r["width"], r["height"], np.log1p(r["bytes"]), float(r["format"] == "jpeg"), r["quality"]] for r in rows],
        dtype=float,
    )


def _single_auc(labels: np.ndarray, values: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    if np.ptp(values) == 0:
        return 0.5
    auc = float(roc_auc_score(labels, values))
    return max(auc, 1.0 - auc)


def bias_probe(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Cross-validated AUC of the metadata probe, each attribute's AUC, and the leading attribute."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    labels = np.array([r["label"] == "fake" for r in rows], dtype=int)
    if min(labels.sum(), len(labels) - labels.sum()) < 5:
        return {"auc": None, "features": {}, "leading": None, "note": "fewer than 5 samples of a class"}
    features = _features(rows)
    per_feature = {name: round(_single_auc(labels, features[:, i]), 4) for i, name in enumerate(FEATURES)}
    varying = [i for i in range(features.shape[1]) if np.ptp(features[:, i]) > 0]
    if varying:
        model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
        folds = StratifiedKFold(n_splits=5, shuffle=True, random_state=0)
        scores = cross_val_predict(model, features[:, varying], labels, cv=folds, method="predict_proba")[:, 1]
        auc = round(max(float(roc_auc_score(labels, scores)), 0.5), 4)
    else:
        auc = 0.5
    leading = max(_BLAME_ORDER, key=lambda name: per_feature[name])
    return {"auc": auc, "features": per_feature, "leading": leading}


def gate_message(probe: dict[str, Any], max_auc: float) -> str | None:
    """Why the bias gate fails, or None when the probe is within `max_auc`."""
    if probe.get("auc") is None or probe["auc"] <= max_auc:
        return None
    leading = probe["leading"]
    return (
        f"bias gate: a metadata-only probe tells real from fake with AUC {probe['auc']:.3f} "
        f"(max {max_auc:.3f}); leading attribute: {leading} (AUC {probe['features'][leading]:.3f})"
    )


def leakage(rows: list[dict[str, Any]]) -> dict[str, int]:
    """Samples whose parent lies in another split, and image hashes present in more than one split."""
    split_of = {r["key"]: r["split"] for r in rows}
    parents = sum(1 for r in rows if r["parent_key"] and split_of.get(r["parent_key"], r["split"]) != r["split"])
    splits_by_hash: dict[str, set[str]] = {}
    for r in rows:
        splits_by_hash.setdefault(r["sha256"], set()).add(r["split"])
    hashes = sum(1 for splits in splits_by_hash.values() if len(splits) > 1)
    return {"parents_across_splits": parents, "hashes_across_splits": hashes}
