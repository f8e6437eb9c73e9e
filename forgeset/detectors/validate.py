"""`forgeset validate`: train the baselines on train, select on val, evaluate on test and the held-out split.

Protocols: per generator / kind / perturbation, a cross-generator matrix (train on one generator's
fakes with all train reals, test on each generator), robustness per degradation op and level,
localization of inpainting (detectors with maps), when the corpus holds adversarial samples,
attack success per surrogate and its transfer to every detector, and, when its fakes carry a
recorded watermark, the watermark detector beside the passive ones: bit accuracy and detection
AUC of the marked fakes per perturbation and per last degradation (ImageDetectBench's question).
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from forgeset.detectors.base import Detector, detectors
from forgeset.detectors.data import SHUFFLE_BUFFER, CorpusStream, RowFilter
from forgeset.detectors.metrics import detection_metrics, localization_per_image
from forgeset.detectors.watermark import NAME as WATERMARK
from forgeset.detectors.watermark import WatermarkDetector
from forgeset.manifests.corpus import Corpus
from forgeset.manifests.layout import HOLDOUT_SPLIT, REALS_FROM


def _make(
    name: str,
    size: int,
    epochs: int | None,
    seed: int,
    backbone: str | None = None,
    settings: dict[str, Any] | None = None,
) -> Detector:
    detector_cls = detectors.get(name)
    overrides: dict[str, Any] = {"seed": seed, **(settings or {})}
    if epochs is not None:
        overrides["epochs"] = epochs
    if detector_cls.needs_backbone:
        if not backbone:
            raise ValueError(f"detector {name!r} needs a vision backbone: pass --backbone (Hub id or folder)")
        overrides["model"] = backbone
    return detector_cls(detector_cls.Params(**overrides), size)


def _level(row: dict) -> tuple[str, str] | None:
    """(op, level) of a perturbed sample's last degradation, the level rounded for bucketing."""
    applied = [op for op in json.loads(row["ops"]) if op.get("stage")]
    if not applied:
        return None
    op = applied[-1]
    values = [v for v in op["params"].values() if isinstance(v, (int, float)) and not isinstance(v, bool)]
    return op["op"], (f"{values[0]:.2g}" if values else "-")


def _surrogate(row: dict) -> str | None:
    """The surrogate set of an adversarial sample ("a+b"), or None."""
    for op in json.loads(row["ops"]):
        if op["op"] == "adversarial":
            return "+".join(op["params"]["surrogate_names"])
    return None


@dataclass
class Scored:
    """Scores of a streamed split with the few row fields the protocols group by (no pixels, no rows)."""

    labels: list[int] = field(default_factory=list)
    scores: list[np.ndarray] = field(default_factory=list)
    generator: list[str] = field(default_factory=list)
    kind: list[str] = field(default_factory=list)
    perturbation: list[str] = field(default_factory=list)
    level: list[tuple[str, str] | None] = field(default_factory=list)
    surrogate: list[str | None] = field(default_factory=list)
    f1s: list[float] = field(default_factory=list)
    ious: list[float] = field(default_factory=list)
    bit_accuracy: list[float] = field(default_factory=list)
    """Per sample: bit accuracy against its recorded watermark payload (NaN when unmarked; watermark detector only)."""

    @property
    def label_array(self) -> np.ndarray:
        """Labels (1 = fake)."""
        return np.array(self.labels, dtype=np.int64)

    @property
    def score_array(self) -> np.ndarray:
        """P(fake) per sample."""
        return np.concatenate(self.scores) if self.scores else np.zeros(0)


def _score(detector: Detector, stream: CorpusStream, localize: bool = False) -> Scored:
    """Score every sample of `stream` batch by batch, keeping per sample only what the protocols need."""
    out = Scored()
    for batch, scores in detector.scored_batches(stream):
        out.scores.append(scores)
        out.labels.extend(int(v) for v in batch.labels)
        for row in batch.rows:
            out.generator.append(str(row["generator"]))
            out.kind.append(str(row["kind"]))
            out.perturbation.append(row["perturbation"] or "")
            out.level.append(_level(row) if row["perturbation"] else None)
            out.surrogate.append(_surrogate(row))
        if isinstance(detector, WatermarkDetector):
            out.bit_accuracy.extend(_bit_accuracies(detector, batch.images, batch.rows))
        if localize:
            # Localized edits are the samples with a non-empty mask (mask_area is -1 without one).
            inpainted = np.array([r["mask_area"] > 0 for r in batch.rows])
            maps = detector.localize(batch.images[inpainted]) if inpainted.any() else None
            if maps is not None:
                f1s, ious = localization_per_image(maps, batch.masks[inpainted])
                out.f1s.extend(f1s)
                out.ious.extend(ious)
    return out


def _bit_accuracies(detector: WatermarkDetector, images: np.ndarray, rows: list[dict]) -> list[float]:
    """Each row's bit accuracy against its own recorded payload; NaN for unmarked rows."""
    marked = [i for i, row in enumerate(rows) if row.get("watermark_payload")]
    out = [float("nan")] * len(rows)
    if marked:
        payloads = [rows[i]["watermark_payload"] for i in marked]
        for i, value in zip(marked, detector.bit_accuracies(images[marked], payloads), strict=True):
            out[i] = float(value)
    return out


def _watermark(scored: Scored, seed: int) -> dict[str, Any]:
    """Bit accuracy and detection AUC (marked fakes vs all reals): overall, per perturbation, per last degradation."""
    labels, scores = scored.label_array, scored.score_array
    accuracy = np.array(scored.bit_accuracy, dtype=np.float64)
    marked = ~np.isnan(accuracy)
    reals = (labels == 0) & ~marked

    def entry(index: np.ndarray) -> dict[str, Any]:
        keep = reals | index
        return {
            "bit_accuracy": round(float(accuracy[index].mean()), 4),
            "n": int(index.sum()),
            "auc": detection_metrics(labels[keep], scores[keep], seed)["auc"],
        }

    perturbation = np.array(scored.perturbation, dtype=object)
    level = np.array([" ".join(bucket) if bucket else "" for bucket in scored.level], dtype=object)
    per_degradation: dict[str, dict[str, Any]] = defaultdict(dict)
    for op, value in sorted({bucket for bucket, m in zip(scored.level, marked, strict=True) if m and bucket}):
        per_degradation[op][value] = entry(marked & (level == f"{op} {value}"))
    return {
        "all": entry(marked) if marked.any() else {"bit_accuracy": None, "n": 0, "auc": None},
        "per_perturbation": {
            value: entry(marked & (perturbation == value)) for value in sorted(set(perturbation[marked]))
        },
        "per_degradation": dict(per_degradation),
    }


def _watermark_settings(corpus: Corpus) -> dict[str, Any] | None:
    """The watermark detector's settings read from the corpus's marked rows, so it decodes as the build embedded;
    the key is set only when one payload marks every sample. None when nothing is marked."""
    table = corpus.table
    if "watermark_payload" not in table.column_names:
        return None
    marked = table.filter(pc.is_valid(table["watermark_payload"])).select(["watermark_payload", "ops"])
    if not marked.num_rows:
        return None
    payloads = pc.unique(marked["watermark_payload"]).to_pylist()
    ops = json.loads(marked["ops"][0].as_py())
    params = next(op["params"] for op in ops if op["op"] == WATERMARK)
    return {
        "payload": payloads[0] if len(payloads) == 1 else None,
        "bits": int(params["bits"]),
        "strength": float(params["strength"]),
    }


CLEAN_KEY = "(clean)"
"""The per-perturbation entry of samples without a perturbation (not a valid stage name, so no clash)."""


def _grouped(scored: Scored, values: list[str], seed: int, matched_reals: bool = False) -> dict[str, Any]:
    """Fakes of each value of a field against the reals of the split.

    With `matched_reals` (perturbations), fakes degraded by P are compared with the reals degraded
    by P when there are any, else with the clean reals: against all reals, a detector that only
    spots the degradation itself (JPEG blocks on degraded fakes, clean reals) would score high.
    """
    labels, scores = scored.label_array, scored.score_array
    column = np.array([v or "" for v in values], dtype=object)
    reals = labels == 0
    out = {}
    for value in sorted({v or "" for v, label in zip(values, scored.labels, strict=True) if label}):
        compared = reals
        if matched_reals:
            same = reals & (column == value)
            compared = same if same.any() else reals & (column == "")
        keep = compared | ((labels == 1) & (column == value))
        out[value or CLEAN_KEY] = detection_metrics(labels[keep], scores[keep], seed)
    return out


def _robustness(scored: Scored) -> dict[str, Any]:
    """Accuracy at 0.5 of degraded samples per op and level, next to the clean accuracy and its n."""
    labels, scores = scored.label_array, scored.score_array
    clean = np.array([not p for p in scored.perturbation], dtype=bool)
    curves: dict[str, dict[str, Any]] = defaultdict(dict)
    buckets: dict[tuple[str, str], list[int]] = defaultdict(list)
    for i, bucket in enumerate(scored.level):
        if bucket:
            buckets[bucket].append(i)
    for (op, level), index in sorted(buckets.items()):
        point_labels, predicted = labels[index], scores[index] >= 0.5
        curves[op][level] = {
            "accuracy": round(float((predicted == point_labels).mean()), 4),
            "n": len(index),
            "n_real": int((point_labels == 0).sum()),
            "n_fake": int(point_labels.sum()),
        }
    clean_accuracy = float(((scores[clean] >= 0.5) == labels[clean]).mean()) if clean.any() else None
    return {"clean_accuracy": clean_accuracy, "clean_n": int(clean.sum()), "ops": dict(curves)}


def _roc(labels: np.ndarray, scores: np.ndarray) -> dict[str, list[float]]:
    from sklearn.metrics import roc_curve

    if len(set(labels.tolist())) < 2:
        return {"fpr": [], "tpr": []}
    fpr, tpr, _ = roc_curve(labels, scores)
    return {"fpr": [round(float(v), 4) for v in fpr], "tpr": [round(float(v), 4) for v in tpr]}


def _attacks(scored_by_detector: dict[str, Scored]) -> dict[str, Any]:
    """Per surrogate set: success rate (scored real) on each detector, surrogates included."""
    if not scored_by_detector:
        return {}
    first = next(iter(scored_by_detector.values()))
    by_surrogate: dict[str, list[int]] = defaultdict(list)
    for i, surrogate in enumerate(first.surrogate):
        if surrogate:
            by_surrogate[surrogate].append(i)
    return {
        surrogate: {
            name: round(float((scored.score_array[index] < 0.5).mean()), 4)
            for name, scored in scored_by_detector.items()
        }
        | {"n": len(index)}
        for surrogate, index in sorted(by_surrogate.items())
    }


def _evaluation_stream(corpus: Corpus, split: str, with_masks: bool = False) -> CorpusStream:
    """`split` in index order; a split without reals of its own joins the reals of its REALS_FROM split."""
    if split not in REALS_FROM or REALS_FROM[split] not in corpus.splits:
        return CorpusStream(corpus, [split], with_masks=with_masks)
    source = REALS_FROM[split]
    return CorpusStream(
        corpus,
        [split, source],
        lambda row: row["split"] == split or row["label"] == "real",
        with_masks=with_masks,
    )


def _clean_fakes_of(generator: str | None) -> RowFilter:
    """Reals and the unperturbed fakes of `generator` (all generators when None)."""
    return lambda row: (
        not row["perturbation"] and (row["label"] == "real" or generator is None or row["generator"] == generator)
    )


def _cross_generator(
    name: str,
    corpus: Corpus,
    epochs: int | None,
    seed: int,
    progress: Callable[[str], None],
    backbone: str | None = None,
) -> dict[str, dict[str, float | None]]:
    """Train `name` on one generator's train fakes (with all train reals); AUC on each generator."""
    table = corpus.table
    clean = pc.and_(pc.is_valid(table["generator"]), pc.invert(pc.is_valid(table["perturbation"])))
    train_split = pc.equal(table["split"], "train")
    eval_splits = [s for s in ("test", HOLDOUT_SPLIT) if s in corpus.splits]
    generators = sorted(set(table.filter(pc.and_(clean, train_split))["generator"].to_pylist()))
    evaluated = table.filter(pc.and_(clean, pc.is_in(table["split"], value_set=pa.array(eval_splits, pa.string()))))
    targets = sorted(set(evaluated["generator"].to_pylist()))
    test = CorpusStream(corpus, eval_splits, _clean_fakes_of(None))
    matrix: dict[str, dict[str, float | None]] = {}
    for source in generators:
        progress(f"cross-generator: train on {source}")
        detector = _make(name, corpus.policy.size, epochs, seed, backbone)
        train = CorpusStream(corpus, ["train"], _clean_fakes_of(source), shuffle=True, seed=seed)
        detector.fit(train, None)
        scored = _score(detector, test)
        labels, scores = scored.label_array, scored.score_array
        column = np.array(scored.generator, dtype=object)
        matrix[source] = {}
        for target in targets:
            keep = (labels == 0) | (column == target)
            matrix[source][target] = detection_metrics(labels[keep], scores[keep], seed)["auc"]
    return matrix


def _missing_generators(corpus: Corpus, present: set[str], split: str) -> dict[str, Any]:
    """Generators of the corpus with no fakes in `split`, each with the splits that do hold it."""
    table = corpus.table.filter(pc.is_valid(corpus.table["generator"])).select(["generator", "split"])
    where: dict[str, set[str]] = defaultdict(set)
    for generator, in_split in zip(table["generator"].to_pylist(), table["split"].to_pylist(), strict=True):
        where[generator].add(in_split)
    return {
        generator: {"n": 0, "n_real": 0, "n_fake": 0, "auc": None, "accuracy": None, "few": True}
        | {"missing": f"no {split} samples (in: {', '.join(sorted(splits))})"}
        for generator, splits in sorted(where.items())
        if generator not in present
    }


def _context(corpus: Corpus, models: dict[str, Detector], epochs: int | None, seed: int) -> dict[str, Any]:
    """What a reader needs to reproduce the run: corpus identity, versions, settings, seeds, date."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        forgeset_version = version("forgeset")
    except PackageNotFoundError:
        forgeset_version = "unknown"
    return {
        "corpus": corpus.name,
        "spec_sha256": corpus.index.spec_sha256,
        "index_sha256": corpus.index.index_sha256,
        "forgeset_version": forgeset_version,
        "seed": seed,
        "epochs_override": epochs,
        "detectors": {name: detector.params.model_dump(mode="json") for name, detector in models.items()},
        "samples": {split: sum(shard.count for shard in corpus.shards(split)) for split in corpus.splits},
        "shuffle_buffer": SHUFFLE_BUFFER,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def validate_corpus(
    out_dir: Path,
    names: list[str],
    epochs: int | None = None,
    seed: int = 0,
    matrix_detector: str | None = None,
    progress: Callable[[str], None] = lambda message: None,
    backbone: str | None = None,
    workers: int = 0,
) -> dict[str, Any]:
    """Run every protocol on the streamed corpus; write OUT/validation/metrics.json and checkpoints.

    Training reads train through a seeded shuffle buffer, evaluation reads each split in index
    order; only scores and a few row fields per sample are kept, never the pixels.
    """
    for name in names:  # fail before any training, not halfway through
        if detectors.get(name).needs_backbone and not backbone:
            raise ValueError(f"detector {name!r} needs a vision backbone: pass --backbone (Hub id or folder)")
    corpus = Corpus.open(out_dir)
    if "train" not in corpus.splits or "test" not in corpus.splits:
        raise ValueError("validate needs a train and a test split")
    size = corpus.policy.size
    folder = corpus.layout.validation_dir
    watermark = _watermark_settings(corpus)
    if watermark is not None and WATERMARK not in names:
        names = [*names, WATERMARK]
    train = CorpusStream(corpus, ["train"], shuffle=True, seed=seed, workers=workers)
    val = CorpusStream(corpus, ["val"], workers=workers) if "val" in corpus.splits else None
    results: dict[str, Any] = {"context": {}, "detectors": {}, "checkpoints": {}}
    scored_test: dict[str, Scored] = {}
    models: dict[str, Detector] = {}
    for name in names:
        progress(f"training {name}")
        settings = watermark if name == WATERMARK else None
        detector = _make(name, size, epochs, seed, backbone, settings)
        models[name] = detector
        log = detector.fit(train, val, lambda message, _f, n=name: progress(f"{n}: {message}"))
        sha = detector.save(corpus.layout.checkpoint(name))
        results["checkpoints"][name] = {"path": corpus.layout.checkpoint_relative(name), "sha256": sha}
        entry: dict[str, Any] = {"training": log}
        for split_name in ("test", HOLDOUT_SPLIT):
            if split_name not in corpus.splits:
                continue
            progress(f"{name}: scoring {split_name}")
            is_test = split_name == "test"
            scored = _score(detector, _evaluation_stream(corpus, split_name, with_masks=is_test), localize=is_test)
            labels, scores = scored.label_array, scored.score_array
            entry[split_name] = detection_metrics(labels, scores, seed)
            entry[f"{split_name}_roc"] = _roc(labels, scores)
            if is_test:
                scored_test[name] = scored
                per_generator = _grouped(scored, scored.generator, seed)
                entry["per_generator"] = per_generator | _missing_generators(corpus, set(per_generator), "test")
                entry["per_kind"] = _grouped(scored, scored.kind, seed)
                entry["per_perturbation"] = _grouped(scored, scored.perturbation, seed, matched_reals=True)
                entry["robustness"] = _robustness(scored)
                if scored.bit_accuracy:
                    entry[WATERMARK] = _watermark(scored, seed)
                if scored.f1s:
                    entry["localization"] = {
                        "f1": round(float(np.mean(scored.f1s)), 4),
                        "iou": round(float(np.mean(scored.ious)), 4),
                        "n": len(scored.f1s),
                    }
        results["detectors"][name] = entry
    chosen = matrix_detector or names[0]
    results["cross_generator"] = {
        "detector": chosen,
        "auc": _cross_generator(chosen, corpus, epochs, seed, progress, backbone),
    }
    results["attacks"] = _attacks(scored_test)
    results["context"] = _context(corpus, models, epochs, seed)
    folder.mkdir(parents=True, exist_ok=True)
    corpus.layout.metrics.write_text(json.dumps(results, indent=2) + "\n")
    return results
