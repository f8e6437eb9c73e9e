"""A self-contained report.html: metrics tables and matplotlib plots embedded as base64 PNGs.

Every string from the results (detector, generator, perturbation, op, split and surrogate names)
and the title (the corpus folder's name) is HTML-escaped (`_esc`); in plot labels, where
matplotlib would read `$...$` as mathtext, dollar signs are escaped (`_label`).
"""

from __future__ import annotations

import base64
import html
import io
from typing import Any

import numpy as np

from forgeset.manifests.layout import HOLDOUT_SPLIT


def _esc(value: Any) -> str:
    """`value` as HTML text or attribute value (quotes escaped too; None is empty)."""
    return html.escape("" if value is None else str(value), quote=True)


def _label(value: Any) -> str:
    """`value` as a matplotlib label shown literally (no mathtext)."""
    return str(value).replace("$", r"\$")


def _png(figure: Any) -> str:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    plt.close(figure)
    return base64.b64encode(buffer.getvalue()).decode()


def _roc_figure(results: dict[str, Any], split: str) -> str:
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(4.5, 4))
    for name, entry in results["detectors"].items():
        roc = entry.get(f"{split}_roc") or {}
        if roc.get("fpr"):
            axis.plot(roc["fpr"], roc["tpr"], label=_label(f"{name} (AUC {entry[split]['auc']})"))
    axis.plot([0, 1], [0, 1], "k--", linewidth=0.8)
    axis.set(xlabel="false positive rate", ylabel="true positive rate", title=_label(f"ROC on {split}"))
    axis.legend(loc="lower right", fontsize=8)
    return _png(figure)


def _matrix_figure(matrix: dict[str, dict[str, float | None]], detector: str) -> str:
    import matplotlib.pyplot as plt

    rows = list(matrix)
    cols = sorted({c for row in matrix.values() for c in row})
    row_labels, col_labels = [_label(r) for r in rows], [_label(c) for c in cols]
    values = np.array([[np.nan if matrix[r].get(c) is None else matrix[r][c] for c in cols] for r in rows])
    figure, axis = plt.subplots(figsize=(1.2 + 0.9 * len(cols), 1.0 + 0.6 * len(rows)))
    image = axis.imshow(values, vmin=0.0, vmax=1.0, cmap="viridis")
    axis.set_xticks(range(len(cols)), col_labels, rotation=45, ha="right", fontsize=8)
    axis.set_yticks(range(len(rows)), row_labels, fontsize=8)
    for i in range(len(rows)):
        for j in range(len(cols)):
            if not np.isnan(values[i, j]):
                axis.text(j, i, f"{values[i, j]:.2f}", ha="center", va="center", fontsize=7, color="w")
    axis.set(xlabel="tested on", ylabel="trained on", title=_label(f"cross-generator AUC ({detector})"))
    figure.colorbar(image, ax=axis, fraction=0.05)
    return _png(figure)


def _robustness_figure(results: dict[str, Any]) -> str | None:
    import matplotlib.pyplot as plt

    ops = sorted({op for e in results["detectors"].values() for op in e.get("robustness", {}).get("ops", {})})
    if not ops:
        return None
    figure, axes = plt.subplots(1, len(ops), figsize=(3.2 * len(ops), 3), squeeze=False)
    for axis, op in zip(axes[0], ops, strict=True):
        for name, entry in results["detectors"].items():
            curve = entry.get("robustness", {}).get("ops", {}).get(op, {})
            levels = sorted(curve, key=lambda v: float(v) if v not in ("-",) else 0.0)
            if levels:
                axis.plot(levels, [curve[v]["accuracy"] for v in levels], marker="o", label=_label(name))
        axis.set(title=_label(op), xlabel="level", ylabel="accuracy", ylim=(0, 1.05))
        axis.tick_params(axis="x", labelsize=7, rotation=45)
    axes[0][0].legend(fontsize=7)
    return _png(figure)


def _table(header: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{_esc(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{_esc(v)}</td>" for v in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def render_report(results: dict[str, Any], title: str) -> str:
    """The report's HTML; every plot is an inline <img> (no network, no external files)."""
    import matplotlib

    matplotlib.use("Agg")
    summary = [
        [
            name,
            e["test"]["auc"],
            e["test"]["ap"],
            e["test"]["accuracy"],
            e["test"]["real_accuracy"],
            e["test"]["fake_accuracy"],
            e["test"]["eer"],
            (e.get(HOLDOUT_SPLIT) or {}).get("auc"),
        ]
        for name, e in results["detectors"].items()
    ]
    sections = [
        f"<h1>{_esc(title)}: validation</h1>",
        _table(["detector", "test AUC", "AP", "acc", "real acc", "fake acc", "EER", f"{HOLDOUT_SPLIT} AUC"], summary),
    ]
    plots = [("ROC on test", _roc_figure(results, "test"))]
    if any(HOLDOUT_SPLIT in e for e in results["detectors"].values()):
        caption = f"ROC on {HOLDOUT_SPLIT} (held-out generators vs test reals)"
        plots.append((caption, _roc_figure(results, HOLDOUT_SPLIT)))
    matrix = results.get("cross_generator", {})
    if matrix.get("auc"):
        plots.append(("Cross-generator matrix", _matrix_figure(matrix["auc"], matrix["detector"])))
    robustness = _robustness_figure(results)
    if robustness:
        plots.append(("Robustness per degradation level", robustness))
    for caption, data in plots:
        sections.append(
            f"<figure><img class='plot' alt='{_esc(caption)}' src='data:image/png;base64,{data}'>"
            f"<figcaption>{_esc(caption)}</figcaption></figure>"
        )
    for name, entry in results["detectors"].items():
        rows = [[g, m["auc"], m["accuracy"], m["n"]] for g, m in entry.get("per_generator", {}).items()]
        sections.append(f"<h2>{_esc(name)}: per generator (test)</h2>" + _table(["generator", "AUC", "acc", "n"], rows))
        if "localization" in entry:
            loc = entry["localization"]
            sections.append(
                f"<p>{_esc(name)} localization on inpainted test samples: "
                f"F1 {_esc(loc['f1'])}, IoU {_esc(loc['iou'])} (n={_esc(loc['n'])})</p>"
            )
    if results.get("attacks"):
        detectors = list(results["detectors"])
        rows = [[s, *[a.get(d) for d in detectors], a["n"]] for s, a in results["attacks"].items()]
        sections.append(
            "<h2>Attack success rate (surrogate x detector)</h2>" + _table(["surrogates", *detectors, "n"], rows)
        )
    script = (
        "<script>window.addEventListener('load',()=>{const n=[...document.images].filter("
        "i=>i.complete&&i.naturalWidth>0).length;document.body.dataset.plotsRendered=n;});</script>"
    )
    style = (
        "<style>body{font-family:sans-serif;margin:2em;}table{border-collapse:collapse;margin:1em 0;}"
        "td,th{border:1px solid #ccc;padding:4px 8px;}figure{display:inline-block;margin:1em;}</style>"
    )
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{_esc(title)}</title>{style}"
        f"</head><body data-plots='{len(plots)}'>{''.join(sections)}{script}</body></html>"
    )
