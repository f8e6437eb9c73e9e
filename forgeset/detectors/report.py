"""A self-contained report.html: metrics tables and matplotlib plots embedded as base64 PNGs.

Every string from the results (detector, generator, perturbation, op, split and surrogate names)
and the title (the corpus folder's name) is HTML-escaped (`_esc`); in plot labels, where
matplotlib would read `$...$` as mathtext, dollar signs are escaped (`_label`).
"""

from __future__ import annotations

import base64
import html
import io
import json
from typing import Any

import numpy as np

from forgeset.detectors.metrics import MIN_CLASS_SAMPLES
from forgeset.detectors.watermark import NAME as WATERMARK
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


def _auc_text(metrics: dict[str, Any] | None) -> str:
    """AUC with its bootstrap 95 % interval, e.g. "0.91 [0.85, 0.96]"."""
    if not metrics or metrics.get("auc") is None:
        return "-"
    interval = metrics.get("auc_ci")
    return f"{metrics['auc']} [{interval[0]}, {interval[1]}]" if interval else str(metrics["auc"])


def _note(metrics: dict[str, Any] | None) -> str:
    """Why a figure needs care: no samples, or fewer than MIN_CLASS_SAMPLES of a class."""
    if not metrics:
        return "no samples"
    if metrics.get("missing"):
        return str(metrics["missing"])
    return f"few samples (< {MIN_CLASS_SAMPLES} of a class)" if metrics.get("few") else ""


def _counts(metrics: dict[str, Any] | None) -> list[Any]:
    """n real and n fake of a figure (blank when unknown)."""
    metrics = metrics or {}
    return [metrics.get("n_real", ""), metrics.get("n_fake", "")]


def _roc_figure(results: dict[str, Any], split: str) -> str:
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(4.5, 4))
    for name, entry in results["detectors"].items():
        roc = entry.get(f"{split}_roc") or {}
        metrics = entry.get(split) or {}
        if roc.get("fpr"):
            counts = f"n {metrics.get('n_real', '?')} real / {metrics.get('n_fake', '?')} fake"
            axis.plot(roc["fpr"], roc["tpr"], label=_label(f"{name} (AUC {metrics.get('auc')}, {counts})"))
    axis.plot([0, 1], [0, 1], "k--", linewidth=0.8)
    axis.set(xlabel="false positive rate", ylabel="true positive rate", title=_label(f"ROC on {split}"))
    if axis.get_legend_handles_labels()[0]:
        axis.legend(loc="lower right", fontsize=7)
    return _png(figure)


def _matrix_figure(matrix: dict[str, dict[str, float | None]], detector: str) -> str:
    import matplotlib.pyplot as plt

    rows = list(matrix)
    cols = sorted({c for row in matrix.values() for c in row})
    row_labels, col_labels = [_label(r) for r in rows], [_label(c) for c in cols]
    values = np.array([[np.nan if matrix[r].get(c) is None else matrix[r][c] for c in cols] for r in rows])
    figure, axis = plt.subplots(figsize=(2.5 + 0.9 * len(cols), 1.5 + 0.6 * len(rows)))
    image = axis.imshow(np.ma.masked_invalid(values), vmin=0.0, vmax=1.0, cmap="viridis", aspect="auto")
    axis.set_xticks(range(len(cols)), col_labels, rotation=45, ha="right", fontsize=8)
    axis.set_yticks(range(len(rows)), row_labels, fontsize=8)
    for i in range(len(rows)):
        for j in range(len(cols)):
            missing = bool(np.isnan(values[i, j]))
            text = "n/a" if missing else f"{values[i, j]:.2f}"
            axis.text(j, i, text, ha="center", va="center", fontsize=8, color="k" if missing else "w")
    axis.set(xlabel="tested on", ylabel="trained on", title=_label(f"cross-generator AUC ({detector})"))
    figure.colorbar(image, ax=axis, fraction=0.05)
    return _png(figure)


def _level_key(level: str) -> tuple[int, float, str]:
    """Numeric levels in numeric order, then the others by name."""
    try:
        return (0, float(level), level)
    except ValueError:
        return (1, 0.0, level)


# Robustness panels per row, so that many degradation ops wrap instead of widening the page.
PANELS_PER_ROW = 3


def _robustness_figure(results: dict[str, Any]) -> str | None:
    """Accuracy per degradation level, one panel per op; dashed: each detector's clean accuracy; n per point."""
    import matplotlib.pyplot as plt

    ops = sorted({op for e in results["detectors"].values() for op in e.get("robustness", {}).get("ops", {})})
    if not ops:
        return None
    columns = min(PANELS_PER_ROW, len(ops))
    rows = -(-len(ops) // columns)
    figure, grid = plt.subplots(rows, columns, figsize=(4.2 * columns, 3.6 * rows), squeeze=False)
    axes = list(grid.flat)
    for unused in axes[len(ops) :]:
        unused.set_visible(False)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for axis, op in zip(axes, ops, strict=False):
        levels = sorted(
            {v for e in results["detectors"].values() for v in e.get("robustness", {}).get("ops", {}).get(op, {})},
            key=_level_key,
        )
        for index, (name, entry) in enumerate(results["detectors"].items()):
            color = colors[index % len(colors)]
            robustness = entry.get("robustness", {})
            curve = robustness.get("ops", {}).get(op, {})
            points = [(levels.index(v), curve[v]) for v in levels if v in curve]
            if points:
                axis.plot(
                    [x for x, _ in points],
                    [p["accuracy"] for _, p in points],
                    marker="o",
                    color=color,
                    label=_label(name),
                )
                for x, point in points:
                    axis.annotate(
                        f"n={point['n']}",
                        (x, point["accuracy"]),
                        textcoords="offset points",
                        xytext=(0, 6),
                        ha="center",
                        fontsize=7,
                        color=color,
                    )
            if robustness.get("clean_accuracy") is not None:
                axis.axhline(
                    robustness["clean_accuracy"],
                    color=color,
                    linestyle="--",
                    linewidth=0.9,
                    label=_label(f"{name} clean (n={robustness.get('clean_n', '?')})"),
                )
        axis.set_xticks(range(len(levels)), [_label(v) for v in levels], fontsize=8)
        axis.set_xlim(-0.5, len(levels) - 0.5)
        axis.set(title=_label(op), xlabel="level (first parameter)", ylabel="accuracy at 0.5", ylim=(0, 1.1))
    # One legend below the panels, each label once (a panel may lack a detector's curve).
    legend: dict[str, Any] = {}
    for axis in axes[: len(ops)]:
        handles, labels = axis.get_legend_handles_labels()
        legend.update({label: handle for handle, label in zip(handles, labels, strict=True) if label not in legend})
    figure.tight_layout()
    if legend:
        figure.legend(
            list(legend.values()),
            list(legend),
            loc="upper center",
            bbox_to_anchor=(0.5, 0.0),
            ncol=min(4, len(legend)),
            fontsize=8,
            frameon=False,
        )
    return _png(figure)


def _table(header: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{_esc(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{_esc(v)}</td>" for v in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


GROUP_HEADER = ["AUC [95 % CI]", "acc", "n real", "n fake", "note"]
GROUPS = (("per_generator", "generator"), ("per_kind", "kind"), ("per_perturbation", "perturbation"))


def _group_rows(groups: dict[str, Any]) -> list[list[Any]]:
    """One row per value: AUC with its interval, accuracy, the counts, the note."""
    return [
        [value or "(none)", _auc_text(m), "-" if m.get("accuracy") is None else m["accuracy"], *_counts(m), _note(m)]
        for value, m in groups.items()
    ]


def _context_section(context: dict[str, Any]) -> str:
    """The run context as a two-column table (detector settings as compact JSON)."""
    if not context:
        return ""
    rows: list[list[Any]] = []
    for key, value in context.items():
        if key == "detectors":
            rows.extend([f"detector {name}", json.dumps(params, sort_keys=True)] for name, params in value.items())
        elif isinstance(value, dict):
            rows.append([key, ", ".join(f"{k}: {v}" for k, v in value.items())])
        else:
            rows.append([key, value])
    return "<h2>Run context</h2>" + _table(["field", "value"], rows)


def render_report(results: dict[str, Any], title: str) -> str:
    """The report's HTML; every plot is an inline <img> (no network, no external files)."""
    import matplotlib

    matplotlib.use("Agg")
    summary = []
    for name, e in results["detectors"].items():
        test, holdout = e["test"], e.get(HOLDOUT_SPLIT)
        summary.append(
            [
                name,
                _auc_text(test),
                test["ap"],
                test["accuracy"],
                test["real_accuracy"],
                test["fake_accuracy"],
                test["eer"],
                *_counts(test),
                _note(test),
                _auc_text(holdout) if holdout else "-",
                *(_counts(holdout) if holdout else ["", ""]),
                _note(holdout) if holdout else "",
            ]
        )
    header = ["detector", "test AUC [95 % CI]", "AP", "acc", "real acc", "fake acc", "EER", "n real", "n fake"]
    header += ["note", f"{HOLDOUT_SPLIT} AUC [95 % CI]", "n real", "n fake", "note"]
    sections = [
        f"<h1>{_esc(title)}: validation</h1>",
        _table(header, summary),
        f"<p>Figures on fewer than {MIN_CLASS_SAMPLES} samples of a class are noted; AUC intervals are "
        f"seeded, class-stratified bootstrap 95 % intervals. {_esc(HOLDOUT_SPLIT)} is scored with the test reals.</p>",
        _context_section(results.get("context", {})),
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
        for key, column in GROUPS:
            if key in entry:
                sections.append(
                    f"<h2>{_esc(name)}: per {_esc(column)} (test)</h2>"
                    + _table([column, *GROUP_HEADER], _group_rows(entry[key]))
                )
        if "localization" in entry:
            loc = entry["localization"]
            sections.append(
                f"<p>{_esc(name)} localization on inpainted test samples: "
                f"F1 {_esc(loc['f1'])}, IoU {_esc(loc['iou'])} (n={_esc(loc['n'])})</p>"
            )
        if WATERMARK in entry:  # bit accuracy and AUC of the marked fakes: which degradation the mark survives
            marks = entry[WATERMARK]
            groups = [("(all marked)", marks["all"]), *marks["per_perturbation"].items()]
            groups += [
                (f"last op {op} {level}", m)
                for op, levels in marks["per_degradation"].items()
                for level, m in levels.items()
            ]
            sections.append(
                f"<h2>{_esc(name)}: watermark on marked test fakes</h2>"
                + _table(
                    ["group", "bit accuracy", "AUC vs reals", "n marked"],
                    [[g, m["bit_accuracy"], m["auc"], m["n"]] for g, m in groups],
                )
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
        "td,th{border:1px solid #ccc;padding:4px 8px;}figure{display:inline-block;margin:1em;max-width:100%;}"
        "img.plot{max-width:100%;}</style>"
    )
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{_esc(title)}</title>{style}"
        f"</head><body data-plots='{len(plots)}'>{''.join(sections)}{script}</body></html>"
    )
