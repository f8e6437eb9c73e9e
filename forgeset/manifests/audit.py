"""`forgeset inspect`: counts and a format/size audit per label, from the manifest alone.

The audit answers the question behind most shortcut-learning complaints: do real and fake
differ in anything but content (format, size, file size)? It also names a class (real or fake)
with no samples, in the corpus or in a split: a detector cannot learn or be scored on it.
The manifest is read as the audit's few columns, a row group at a time.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from forgeset.manifests.corpus import Corpus
from forgeset.manifests.layout import REALS_FROM
from forgeset.manifests.schema import LABELS

QUANTILES = (0.05, 0.5, 0.95)
_AUDIT_COLUMNS = ["label", "format", "quality", "width", "height", "bytes"]


class _LabelFacts:
    """Formats, size ranges and file sizes of one label, folded in a table at a time."""

    def __init__(self) -> None:
        self.count = 0
        self.formats: Counter[tuple[str, int]] = Counter()
        self.width = [np.iinfo(np.int64).max, np.iinfo(np.int64).min]
        self.height = [np.iinfo(np.int64).max, np.iinfo(np.int64).min]
        self.sizes: list[np.ndarray] = []

    def add(self, rows: pa.Table) -> None:
        self.count += rows.num_rows
        grouped = rows.group_by(["format", "quality"]).aggregate([([], "count_all")])
        for entry in grouped.to_pylist():
            self.formats[(entry["format"], entry["quality"])] += entry["count_all"]
        for bounds, column in ((self.width, "width"), (self.height, "height")):
            extremes = pc.min_max(rows[column]).as_py()
            bounds[0], bounds[1] = min(bounds[0], extremes["min"]), max(bounds[1], extremes["max"])
        # File sizes are kept (8 bytes a row) for exact quantiles.
        self.sizes.append(rows["bytes"].to_numpy())

    def report(self) -> dict[str, Any]:
        sizes = np.concatenate(self.sizes)
        return {
            "count": self.count,
            "formats": {f"{fmt} q{quality}": n for (fmt, quality), n in sorted(self.formats.items())},
            "width": [int(v) for v in self.width],
            "height": [int(v) for v in self.height],
            "file_bytes": {f"p{int(q * 100)}": int(np.quantile(sizes, q)) for q in QUANTILES},
        }


def missing_classes(counts: dict[str, Any]) -> dict[str, list[str]]:
    """Per split (and "all"), the labels with no samples; splits where every label has samples are left out.

    A split that takes its reals from another split by design (test_ood: held-out fakes, evaluated
    against test's reals) is not missing its reals.
    """
    tallies = {**counts.get("splits", {}), "all": counts.get("all", {})}
    missing = {}
    for split, tally in tallies.items():
        expected = [label for label in LABELS if not (label == "real" and split in REALS_FROM)]
        absent = [label for label in expected if not tally.get("label", {}).get(label)]
        if absent:
            missing[split] = absent
    return missing


def audit_corpus(out_dir: Path) -> dict[str, Any]:
    """Counts (from index.json), per-label format/size facts, classes without samples and reject reasons."""
    corpus = Corpus.open(out_dir)
    facts: dict[str, _LabelFacts] = {}
    for batch in corpus.manifest_batches(_AUDIT_COLUMNS):
        for label in pc.unique(batch["label"]).to_pylist():
            facts.setdefault(label, _LabelFacts()).add(batch.filter(pc.equal(batch["label"], label)))
    per_label = {str(label): facts[label].report() for label in sorted(facts)}
    rejects = corpus.read_rejects().select(["reason"]).to_pandas()
    reasons = {str(k): int(v) for k, v in rejects.groupby("reason").size().items()}
    return {
        "name": corpus.name,
        "samples": corpus.index.samples,
        "counts": corpus.index.counts,
        "missing_classes": missing_classes(corpus.index.counts),
        "audit": per_label,
        "rejects": reasons,
        "leakage": corpus.index.leakage,
        "bias_probe": corpus.index.bias_probe,
    }
