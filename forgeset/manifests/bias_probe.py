"""The bias probe: can metadata alone (no pixels) tell real from fake?

A logistic regression on width, height, file size, format and encoder quality, scored by
5-fold cross-validated ROC AUC. Near 0.5 means the container says nothing about the label; a
high AUC means a detector could learn the container (GenImage's JPEG-real / PNG-fake shortcut).
Each attribute's own AUC names what leaks.

Both the probe and the leakage figures take Arrow tables (columns, not per-row dicts), so
finalize and verify reduce a corpus of millions of rows without a Python object per row; the
probe is fitted on a bounded, order-independent sample (see `forgeset.manifests.index`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

FEATURES = ("width", "height", "file_size", "format", "quality")
# On equal AUC, name the cause before its consequence: a format or quality choice also moves file size.
_BLAME_ORDER = ("format", "quality", "width", "height", "file_size")


# The manifest columns the probe reads.
PROBE_COLUMNS = ("label", "width", "height", "bytes", "format", "quality")
# The manifest columns the leakage figures read.
LEAKAGE_COLUMNS = ("key", "split", "parent_key", "sha256")


def _column(table: pa.Table, name: str) -> np.ndarray:
    return np.asarray(table[name].to_numpy(), dtype=float)


def _features(table: pa.Table) -> np.ndarray:
    is_jpeg = pc.equal(table["format"], "jpeg").to_numpy(zero_copy_only=False).astype(float)
    columns = [_column(table, "width"), _column(table, "height"), np.log1p(_column(table, "bytes")), is_jpeg]
    return np.column_stack([*columns, _column(table, "quality")]) if table.num_rows else np.zeros((0, 5))


def _single_auc(labels: np.ndarray, values: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    if np.ptp(values) == 0:
        return 0.5
    auc = float(roc_auc_score(labels, values))
    return max(auc, 1.0 - auc)


def bias_probe(table: pa.Table) -> dict[str, Any]:
    """Cross-validated AUC of the metadata probe, each attribute's AUC, and the leading attribute.

    `table` holds PROBE_COLUMNS in manifest order (the fold assignment depends on the order).
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    labels = pc.equal(table["label"], "fake").to_numpy(zero_copy_only=False).astype(int)
    if min(labels.sum(), len(labels) - labels.sum()) < 5:
        return {"auc": None, "features": {}, "leading": None, "note": "fewer than 5 samples of a class"}
    features = _features(table)
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


def leakage(table: pa.Table) -> dict[str, int]:
    """Samples whose parent lies in another split, and image hashes present in more than one split.

    `table` holds LEAKAGE_COLUMNS; a parent missing from the table counts as in the same split.
    """
    children = table.filter(pc.fill_null(pc.not_equal(table["parent_key"], ""), False))
    parents = table.select(["key", "split"]).rename_columns(["parent_key", "parent_split"])
    joined = children.select(["parent_key", "split"]).join(parents, "parent_key", join_type="inner")
    across = pc.sum(pc.not_equal(joined["split"], joined["parent_split"])).as_py() or 0
    by_hash = table.group_by("sha256").aggregate([("split", "count_distinct")])
    hashes = pc.sum(pc.greater(by_hash["split_count_distinct"], 1)).as_py() or 0
    return {"parents_across_splits": int(across), "hashes_across_splits": int(hashes)}
