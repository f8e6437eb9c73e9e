"""`forgeset validate`: train the baselines on train, select on val, evaluate on test and the held-out split.

Protocols: per generator / kind / perturbation, a cross-generator matrix (train on one generator's
fakes with all train reals, test on each generator), robustness per degradation op and level,
localization of inpainting (detectors with maps), and, when the corpus holds adversarial samples,
attack success per surrogate and its transfer to every detector.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from forgeset.detectors.base import Detector, detectors
from forgeset.detectors.data import CorpusSplit, load_corpus
from forgeset.detectors.metrics import detection_metrics, localization_scores
from forgeset.manifests.corpus import Corpus
from forgeset.manifests.layout import HOLDOUT_SPLIT, REALS_FROM


def _make(name: str, size: int, epochs: int | None, seed: int, backbone: str | None = None) -> Detector:
    detector_cls = detectors.get(name)
    overrides: dict[str, Any] = {"seed": seed}
    if epochs is not None:
        overrides["epochs"] = epochs
    if detector_cls.needs_backbone:
        if not backbone:
            raise ValueError(f"detector {name!r} needs a vision backbone: pass --backbone (Hub id or folder)")
        overrides["model"] = backbone
    return detector_cls(detector_cls.Params(**overrides), size)


def _grouped(split: CorpusSplit, scores: np.ndarray, field: str) -> dict[str, Any]:
    """Fakes of each value of `field` against all reals of the split."""
    reals = split.labels == 0
    out = {}
    for value in sorted({str(r[field]) for r, label in zip(split.rows, split.labels, strict=True) if label}):
        fakes = np.array(
            [bool(label) and str(r[field]) == value for r, label in zip(split.rows, split.labels, strict=True)]
        )
        keep = reals | fakes
        out[value] = detection_metrics(split.labels[keep], scores[keep])
    return out


def _level(row: dict) -> tuple[str, str] | None:
    """(op, level) of a perturbed sample's last degradation, the level rounded for bucketing."""
    applied = [op for op in json.loads(row["ops"]) if op.get("stage")]
    if not applied:
        return None
    op = applied[-1]
    values = [v for v in op["params"].values() if isinstance(v, (int, float)) and not isinstance(v, bool)]
    return op["op"], (f"{values[0]:.2g}" if values else "-")


def _robustness(split: CorpusSplit, scores: np.ndarray) -> dict[str, Any]:
    """Accuracy at 0.5 of degraded samples per op and level, next to the clean accuracy."""
    clean = np.array([not r["perturbation"] for r in split.rows])
    curves: dict[str, dict[str, Any]] = defaultdict(dict)
    buckets: dict[tuple[str, str], list[int]] = defaultdict(list)
    for i, row in enumerate(split.rows):
        bucket = _level(row) if row["perturbation"] else None
        if bucket:
            buckets[bucket].append(i)
    for (op, level), index in sorted(buckets.items()):
        labels, predicted = split.labels[index], scores[index] >= 0.5
        curves[op][level] = {"accuracy": round(float((predicted == labels).mean()), 4), "n": len(index)}
    clean_accuracy = float(((scores[clean] >= 0.5) == split.labels[clean]).mean()) if clean.any() else None
    return {"clean_accuracy": clean_accuracy, "ops": dict(curves)}


def _roc(labels: np.ndarray, scores: np.ndarray) -> dict[str, list[float]]:
    from sklearn.metrics import roc_curve

    if len(set(labels.tolist())) < 2:
        return {"fpr": [], "tpr": []}
    fpr, tpr, _ = roc_curve(labels, scores)
    return {"fpr": [round(float(v), 4) for v in fpr], "tpr": [round(float(v), 4) for v in tpr]}


def _attacks(split: CorpusSplit, scores_by_detector: dict[str, np.ndarray]) -> dict[str, Any]:
    """Per surrogate set: success rate (scored real) on each detector, surrogates included."""
    by_surrogate: dict[str, list[int]] = defaultdict(list)
    for i, row in enumerate(split.rows):
        for op in json.loads(row["ops"]):
            if op["op"] == "adversarial":
                by_surrogate["+".join(op["params"]["surrogate_names"])].append(i)
    return {
        surrogate: {name: round(float((scores[index] < 0.5).mean()), 4) for name, scores in scores_by_detector.items()}
        | {"n": len(index)}
        for surrogate, index in sorted(by_surrogate.items())
    }


def _cross_generator(
    name: str,
    size: int,
    epochs: int | None,
    seed: int,
    data: dict[str, CorpusSplit],
    progress: Callable[[str], None],
    backbone: str | None = None,
) -> dict[str, dict[str, float | None]]:
    """Train `name` on one generator's train fakes (with all train reals); AUC on each generator."""
    train = data["train"]
    test = data["test"].join(data[HOLDOUT_SPLIT]) if HOLDOUT_SPLIT in data else data["test"]
    generators = sorted({r["generator"] for r in train.rows if r["generator"] and not r["perturbation"]})
    targets = sorted({r["generator"] for r in test.rows if r["generator"] and not r["perturbation"]})
    clean = np.array([not r["perturbation"] for r in test.rows])
    matrix: dict[str, dict[str, float | None]] = {}
    for source in generators:
        progress(f"cross-generator: train on {source}")
        keep = np.array(
            [
                (label == 0 or r["generator"] == source) and not r["perturbation"]
                for r, label in zip(train.rows, train.labels, strict=True)
            ]
        )
        detector = _make(name, size, epochs, seed, backbone)
        detector.fit(train.subset(keep), None)
        scores = detector.scores(test.images)
        matrix[source] = {}
        for target in targets:
            mask = clean & np.array(
                [label == 0 or r["generator"] == target for r, label in zip(test.rows, test.labels, strict=True)]
            )
            matrix[source][target] = detection_metrics(test.labels[mask], scores[mask])["auc"]
    return matrix


def validate_corpus(
    out_dir: Path,
    names: list[str],
    epochs: int | None = None,
    seed: int = 0,
    matrix_detector: str | None = None,
    progress: Callable[[str], None] = lambda message: None,
    backbone: str | None = None,
) -> dict[str, Any]:
    """Run every protocol; write OUT/validation/metrics.json and checkpoints; return the metrics."""
    for name in names:  # fail before any training, not halfway through
        if detectors.get(name).needs_backbone and not backbone:
            raise ValueError(f"detector {name!r} needs a vision backbone: pass --backbone (Hub id or folder)")
    corpus = Corpus.open(out_dir)
    data = load_corpus(corpus)
    if "train" not in data or "test" not in data:
        raise ValueError("validate needs a train and a test split")
    size = data["train"].images.shape[1]
    folder = corpus.layout.validation_dir
    results: dict[str, Any] = {"detectors": {}, "checkpoints": {}}
    scores_test: dict[str, np.ndarray] = {}
    for name in names:
        progress(f"training {name}")
        detector = _make(name, size, epochs, seed, backbone)
        log = detector.fit(data["train"], data.get("val"), lambda message, _f, n=name: progress(f"{n}: {message}"))
        sha = detector.save(corpus.layout.checkpoint(name))
        results["checkpoints"][name] = {"path": corpus.layout.checkpoint_relative(name), "sha256": sha}
        entry: dict[str, Any] = {"training": log}
        for split_name in ("test", HOLDOUT_SPLIT):
            if split_name not in data:
                continue
            split = data[split_name]
            if split_name in REALS_FROM:
                reals = data[REALS_FROM[split_name]]
                split = split.join(reals.subset(reals.labels == 0))
            scores = detector.scores(split.images)
            entry[split_name] = detection_metrics(split.labels, scores)
            entry[f"{split_name}_roc"] = _roc(split.labels, scores)
            if split_name == "test":
                scores_test[name] = scores
                entry["per_generator"] = _grouped(split, scores, "generator")
                entry["per_kind"] = _grouped(split, scores, "kind")
                entry["per_perturbation"] = _grouped(split, scores, "perturbation")
                entry["robustness"] = _robustness(split, scores)
                # Localized edits are the samples with a non-empty mask (mask_area is -1 without one).
                inpainted = np.array([r["mask_area"] > 0 for r in split.rows])
                maps = detector.localize(split.images[inpainted]) if inpainted.any() else None
                if maps is not None:
                    entry["localization"] = localization_scores(maps, split.masks[inpainted])
        results["detectors"][name] = entry
    chosen = matrix_detector or names[0]
    results["cross_generator"] = {
        "detector": chosen,
        "auc": _cross_generator(chosen, size, epochs, seed, data, progress, backbone),
    }
    results["attacks"] = _attacks(data["test"], scores_test)
    folder.mkdir(parents=True, exist_ok=True)
    corpus.layout.metrics.write_text(json.dumps(results, indent=2) + "\n")
    return results
