"""report.html: counts beside every figure, flags, intervals, and plots drawn without matplotlib warnings."""

from __future__ import annotations

import warnings
from html.parser import HTMLParser
from typing import Any

from forgeset.detectors.report import render_report
from forgeset.manifests.layout import HOLDOUT_SPLIT


def _metrics(auc: float | None, n_real: int, n_fake: int) -> dict[str, Any]:
    return {
        "auc": auc,
        "auc_ci": None if auc is None else [round(auc - 0.05, 4), round(auc + 0.05, 4)],
        "ap": auc,
        "accuracy": 0.7,
        "real_accuracy": 0.6,
        "fake_accuracy": 0.8,
        "eer": 0.3,
        "n": n_real + n_fake,
        "n_real": n_real,
        "n_fake": n_fake,
        "few": n_real < 30 or n_fake < 30,
    }


def _entry(auc: float, robustness: bool = True) -> dict[str, Any]:
    missing = _metrics(None, 0, 0) | {"accuracy": None, "missing": "no test samples (in: test_ood)"}
    return {
        "test": _metrics(auc, 120, 80),
        "test_roc": {"fpr": [0.0, 0.2, 1.0], "tpr": [0.0, 0.9, 1.0]},
        "per_generator": {"tiny-sd": _metrics(auc, 120, 50), "tiny-sd-euler": missing},
        "per_kind": {"text2image": _metrics(auc, 120, 50), "inpaint": _metrics(0.6, 120, 12)},
        "per_perturbation": {"jpeg": _metrics(0.7, 120, 31)},
        "robustness": {
            "clean_accuracy": 0.9,
            "clean_n": 150,
            "ops": {"jpeg": {"50": {"accuracy": 0.7, "n": 20}, "90": {"accuracy": 0.8, "n": 11}}} if robustness else {},
        },
    }


class _Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.cells: list[str] = []
        self.current: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "tr":
            self.current = []

    def handle_data(self, data: str) -> None:
        if self.current is not None:
            self.current.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self.current is not None:
            self.current.append("|")
        if tag == "tr" and self.current is not None:
            self.cells.append("".join(self.current))
            self.current = None


def _rows(page: str) -> list[str]:
    parser = _Text()
    parser.feed(page)
    return parser.cells


def test_counts_intervals_flags_and_missing_generators_are_in_the_tables() -> None:
    results = {
        "context": {"corpus": "mix", "spec_sha256": "ab" * 32, "seed": 3, "detectors": {"cnn": {"epochs": 2}}},
        "detectors": {"cnn": _entry(0.91)},
        "cross_generator": {},
        "attacks": {},
    }
    rows = _rows(render_report(results, "mix"))
    assert "cnn|0.91 [0.86, 0.96]|0.91|0.7|0.6|0.8|0.3|120|80||-||||" in rows
    assert "tiny-sd|0.91 [0.86, 0.96]|0.7|120|50||" in rows
    assert "tiny-sd-euler|-|-|0|0|no test samples (in: test_ood)|" in rows
    assert "inpaint|0.6 [0.55, 0.65]|0.7|120|12|few samples (< 30 of a class)|" in rows
    assert "jpeg|0.7 [0.65, 0.75]|0.7|120|31||" in rows  # per perturbation, 31 is enough
    assert f"spec_sha256|{'ab' * 32}|" in rows and "seed|3|" in rows
    assert 'detector cnn|{"epochs": 2}|' in rows


def test_plots_draw_without_matplotlib_warnings_in_every_shape() -> None:
    """One detector or two, no ROC points, a one-column matrix of missing AUCs, no robustness curves."""
    two = {"cnn": _entry(0.9), "npr": _entry(0.8) | {HOLDOUT_SPLIT: _metrics(0.7, 120, 9)}}
    shapes = [
        {"detectors": two, "cross_generator": {"detector": "cnn", "auc": {"a": {"b": 0.7}, "c": {"b": None}}}},
        {"detectors": {"cnn": _entry(0.9) | {"test_roc": {"fpr": [], "tpr": []}}}, "cross_generator": {}},
        {
            "detectors": {"cnn": _entry(0.9, robustness=False)},
            "cross_generator": {"detector": "cnn", "auc": {"a": {"b": None}}},
        },
    ]
    for results in shapes:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            page = render_report(results, "mix")
        assert page.count("<img") == page.count("<figcaption>") >= 1
    assert "Robustness per degradation level" in render_report(shapes[0], "mix")
    assert "Robustness per degradation level" not in render_report(shapes[2], "mix")
