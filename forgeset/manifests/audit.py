"""`forgeset inspect`: counts and a format/size audit per label, from the manifest alone.

The audit answers the question behind most shortcut-learning complaints: do real and fake
differ in anything but content (format, size, file size)?
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from forgeset.manifests.corpus import Corpus

QUANTILES = (0.05, 0.5, 0.95)


def audit_corpus(out_dir: Path) -> dict[str, Any]:
    """Counts (from index.json), per-label format/size facts and reject reasons."""
    corpus = Corpus.open(out_dir)
    manifest = corpus.table.to_pandas()
    per_label: dict[str, Any] = {}
    for label, rows in manifest.groupby("label", sort=True):
        sizes = rows["bytes"].to_numpy()
        per_label[str(label)] = {
            "count": len(rows),
            "formats": {
                f"{fmt} q{quality}": int(n) for (fmt, quality), n in rows.groupby(["format", "quality"]).size().items()
            },
            "width": [int(rows["width"].min()), int(rows["width"].max())],
            "height": [int(rows["height"].min()), int(rows["height"].max())],
            "file_bytes": {f"p{int(q * 100)}": int(np.quantile(sizes, q)) for q in QUANTILES},
        }
    rejects = corpus.read_rejects().select(["reason"]).to_pandas()
    reasons = {str(k): int(v) for k, v in rejects.groupby("reason").size().items()}
    return {
        "name": corpus.name,
        "samples": corpus.index.samples,
        "counts": corpus.index.counts,
        "audit": per_label,
        "rejects": reasons,
        "leakage": corpus.index.leakage,
        "bias_probe": corpus.index.bias_probe,
    }
