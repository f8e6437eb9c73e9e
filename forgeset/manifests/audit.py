"""`forgeset inspect`: counts and a format/size audit per label, from the manifest alone.

The audit answers the question behind most shortcut-learning complaints: do real and fake
differ in anything but content (format, size, file size)?
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq

from forgeset.manifests.index import INDEX_NAME, MANIFEST_NAME, REJECTS_NAME

QUANTILES = (0.05, 0.5, 0.95)


def audit_corpus(out_dir: Path) -> dict[str, Any]:
    """Counts (from index.json), per-label format/size facts and reject reasons."""
    index = json.loads((out_dir / INDEX_NAME).read_text())
    manifest = pq.read_table(out_dir / MANIFEST_NAME).to_pandas()
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
    rejects_path = out_dir / REJECTS_NAME
    reasons: dict[str, int] = {}
    if rejects_path.exists():
        rejects = pq.read_table(rejects_path).to_pandas()
        reasons = {str(k): int(v) for k, v in rejects.groupby("reason").size().items()}
    return {
        "name": index["name"],
        "samples": index["samples"],
        "counts": index["counts"],
        "audit": per_label,
        "rejects": reasons,
        "leakage": index.get("leakage"),
        "bias_probe": index.get("bias_probe"),
    }
