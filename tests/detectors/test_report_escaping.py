"""report.html escapes every name it takes from the results and the corpus folder's name."""

from __future__ import annotations

from html.parser import HTMLParser
from typing import Any

from forgeset.detectors.report import render_report
from forgeset.manifests.layout import HOLDOUT_SPLIT

DETECTOR = "<script>alert('d')</script>"
GENERATOR = '<img src=x onerror="alert(1)">'
PERTURBATION = "<script>p</script>"
OP = "<script>op</script>$\\frac{$"  # also no mathtext: an unbalanced \frac would fail to render
SURROGATE = "<script>s</script>&"
FOLDER = "<script>folder</script>'x'"

ESCAPED = {
    DETECTOR: "&lt;script&gt;alert(&#x27;d&#x27;)&lt;/script&gt;",
    GENERATOR: "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;",
    SURROGATE: "&lt;script&gt;s&lt;/script&gt;&amp;",
    FOLDER: "&lt;script&gt;folder&lt;/script&gt;&#x27;x&#x27;",
}


def _metrics(auc: float) -> dict[str, Any]:
    return {
        "auc": auc,
        "auc_ci": [auc - 0.1, auc + 0.1],
        "ap": 0.8,
        "accuracy": 0.7,
        "real_accuracy": 0.6,
        "fake_accuracy": 0.8,
        "eer": 0.3,
        "n_real": 40,
        "n_fake": 12,
        "few": True,
    }


def _results() -> dict[str, Any]:
    """The shape validate_corpus returns, by hand: one detector, hostile names everywhere."""
    roc = {"fpr": [0.0, 0.5, 1.0], "tpr": [0.0, 0.75, 1.0]}
    entry = {
        "test": _metrics(0.75),
        "test_roc": roc,
        HOLDOUT_SPLIT: _metrics(0.6),
        f"{HOLDOUT_SPLIT}_roc": roc,
        "per_generator": {GENERATOR: {"auc": 0.9, "accuracy": 0.8, "n": 5, "n_real": 3, "n_fake": 2, "few": True}},
        "per_kind": {"text2image": {"auc": 0.9, "accuracy": 0.8, "n": 5}},
        "per_perturbation": {PERTURBATION: {"auc": 0.5, "accuracy": 0.5, "n": 2}},
        "robustness": {"clean_accuracy": 0.8, "ops": {OP: {"0.5": {"accuracy": 0.5, "n": 2}}}},
        "localization": {"f1": 0.4, "iou": 0.3, "n": 3},
    }
    return {
        "context": {"corpus": FOLDER, "seed": 0, "detectors": {DETECTOR: {"type": DETECTOR, "epochs": 1}}},
        "detectors": {DETECTOR: entry},
        "checkpoints": {},
        "cross_generator": {"detector": DETECTOR, "auc": {GENERATOR: {GENERATOR: 0.9, PERTURBATION: None}}},
        "attacks": {SURROGATE: {DETECTOR: 0.25, "n": 4}},
    }


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)


def test_names_appear_only_escaped() -> None:
    page = render_report(_results(), FOLDER)
    for raw in (DETECTOR, GENERATOR, PERTURBATION, OP, SURROGATE, FOLDER, 'onerror="', "<script>alert"):
        assert raw not in page
    assert page.count("<script") == 1  # the report's own plot counter
    assert f"<title>{ESCAPED[FOLDER]}</title>" in page  # the title, even with a held-out split
    assert f"<h1>{ESCAPED[FOLDER]}: validation</h1>" in page
    assert f"<tr><td>{ESCAPED[DETECTOR]}</td><td>0.75 [0.65, 0.85]</td><td>0.8</td>" in page
    assert f"<tr><td>corpus</td><td>{ESCAPED[FOLDER]}</td></tr>" in page  # the run context
    assert f"<h2>{ESCAPED[DETECTOR]}: per generator (test)</h2>" in page
    few = "few samples (&lt; 30 of a class)"
    assert f"<tr><td>{ESCAPED[GENERATOR]}</td><td>0.9</td><td>0.8</td><td>3</td><td>2</td><td>{few}</td></tr>" in page
    assert f"<h2>{ESCAPED[DETECTOR]}: per perturbation (test)</h2>" in page
    assert f"<p>{ESCAPED[DETECTOR]} localization on inpainted test samples: F1 0.4, IoU 0.3 (n=3)</p>" in page
    assert f"<th>surrogates</th><th>{ESCAPED[DETECTOR]}</th><th>n</th>" in page
    assert f"<tr><td>{ESCAPED[SURROGATE]}</td><td>0.25</td><td>4</td></tr>" in page


def test_markup_is_only_the_reports_own() -> None:
    parser = _Tags()
    parser.feed(render_report(_results(), FOLDER))
    plots = 4  # ROC on test and on the held-out split, cross-generator matrix, robustness
    assert parser.tags.count("img") == plots and parser.tags.count("script") == 1
    assert set(parser.tags) == {
        "html",
        "head",
        "meta",
        "title",
        "style",
        "body",
        "h1",
        "h2",
        "p",
        "table",
        "thead",
        "tbody",
        "tr",
        "th",
        "td",
        "figure",
        "img",
        "figcaption",
        "script",
    }
