"""`forgeset export`: the corpus in the folder layouts detector code reads, as byte copies.

Nothing is re-encoded: each file is the exact member stored in the shard (its sha256 equals the
manifest's), so an export keeps the corpus's one format/size policy.

- cnndetection, `per-generator` layout: {split}/{generator}/{0_real,1_fake}/KEY.png, the layout
  of CNNDetection, UnivFD and NPR evaluation. Each generator folder's 0_real holds the reals of
  that split (hard links, no extra space; copies where the filesystem has no hard links); the
  held-out split takes the test split's reals.
  With `balance`, every folder holds a seeded draw of equally many reals and fakes (UnivFD's
  evaluation asserts equal counts). Training code that walks `dataroot/CLASS/` (CNNDetection,
  NPR) needs `--classes` with the generator folder names.
- cnndetection, `merged` layout: {split}/{0_real,1_fake}/KEY.png, each real once per split (the
  held-out split again takes the test reals): the training layout with no repeated reals.
- imagefolder: {split}/{0_real,1_fake}/KEY.png with {split}/metadata.parquet, and a README.md whose
  `configs` name every split (test_ood its own, never merged into test) and whose `dataset_info`
  declares the features (`label` and `generator` as ClassLabel), for `datasets.load_dataset(DIR)`.
  torchvision's ImageFolder on DIR/{split} sorts the folder names, so it sees exactly the classes
  0_real (index 0) and 1_fake (index 1), the indices of our `label`. Masks are kept
  out of that tree, under masks/{split}/KEY.png, named by the `mask_path` column. croissant.json
  describes each split's metadata as a Croissant record set.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from forgeset.manifests import layout
from forgeset.manifests.annotations import parse_annotation
from forgeset.manifests.corpus import Corpus, CorpusSample
from forgeset.manifests.schema import LABELS, MANIFEST_SCHEMA
from forgeset.manifests.shard_writer import file_sha256
from forgeset.publish.hub import link_or_copy

FORMATS = ("cnndetection", "imagefolder")
LAYOUTS = ("per-generator", "merged")

# The folder of a fake that no generator made: a real relabeled as fake during curation.
RELABELED_FOLDER = "relabeled"
CLASS_FOLDERS = {"real": "0_real", "fake": "1_fake"}
# Parquet, not JSON lines: its schema carries the declared features (ClassLabels), which imagefolder reads.
METADATA_NAME = "metadata.parquet"
# imagefolder column names: the conventional `image` and `label` of `datasets` and the Hub.
IMAGE_COLUMN = "image"
MASK_PATH_COLUMN = "mask_path"
# The sample's regions (KEY.ann.json) as a list; empty when it has none. Replaces the manifest's count.
REGIONS_COLUMN = "regions"
NO_GENERATOR = -1  # ClassLabel's "no label": a sample no generator made

Progress = Callable[[int, int], None]


def _fake_folder(row: dict) -> str:
    """The generator folder a fake goes in (cnndetection per-generator layout)."""
    return str(row["generator"] or RELABELED_FOLDER)


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def _seeded_draw(keys: Iterable[str], count: int, rng: random.Random) -> set[str]:
    """`count` of `keys`, drawn with `rng` from the sorted keys (so the draw depends on the seed only)."""
    ordered = sorted(keys)
    return set(rng.sample(ordered, min(count, len(ordered))))


def cnndetection_plan(corpus: Corpus, layout_name: str, balance: bool, seed: int) -> dict[str, list[str]]:
    """For each key, the relative folders its image is written into (cnndetection layouts).

    Folders are {split}/{generator}/{0_real,1_fake} (per-generator) or {split}/{0_real,1_fake} (merged).
    """
    if layout_name not in LAYOUTS:
        raise ValueError(f"unknown cnndetection layout {layout_name!r}; choose one of {', '.join(LAYOUTS)}")
    reals_by_split: dict[str, list[str]] = {}
    fakes_by_folder: dict[str, list[str]] = {}
    for row in corpus.rows:
        if row["label"] == "real":
            reals_by_split.setdefault(row["split"], []).append(row["key"])
        elif layout_name == "merged":
            fakes_by_folder.setdefault(row["split"], []).append(row["key"])
        else:
            fakes_by_folder.setdefault(f"{row['split']}/{_fake_folder(row)}", []).append(row["key"])
    rng = random.Random(seed)
    folders: dict[str, list[str]] = {}
    for folder in sorted(fakes_by_folder):
        split = folder.split("/", 1)[0]
        fakes, reals = fakes_by_folder[folder], reals_by_split.get(layout.REALS_FROM.get(split, split), [])
        if balance:
            count = min(len(fakes), len(reals))
            fakes, reals = sorted(_seeded_draw(fakes, count, rng)), sorted(_seeded_draw(reals, count, rng))
        for key in fakes:
            folders.setdefault(key, []).append(f"{folder}/{CLASS_FOLDERS['fake']}")
        for key in reals:
            folders.setdefault(key, []).append(f"{folder}/{CLASS_FOLDERS['real']}")
    if not balance:  # a split with reals and no fakes still exports its reals
        for split, keys in reals_by_split.items():
            if not any(f.split("/", 1)[0] == split for f in fakes_by_folder):
                for key in keys:
                    folders.setdefault(key, []).append(
                        f"{split}/{CLASS_FOLDERS['real']}" if layout_name == "merged" else f"{split}/real/0_real"
                    )
    return folders


def _export_cnndetection(
    corpus: Corpus, target: Path, layout_name: str, balance: bool, seed: int, progress: Progress | None
) -> dict[str, int]:
    plan = cnndetection_plan(corpus, layout_name, balance, seed)
    counts: dict[str, int] = {}
    total = len(corpus.rows)
    for done, sample in enumerate(corpus.iter_samples(), start=1):
        name = f"{sample.key}.{sample.image_member}"
        first: Path | None = None
        for folder in plan.get(sample.key, []):
            path = corpus.path_inside(target, *folder.split("/"), name)
            if first is None:
                _write(path, sample.image)
                first = path
            else:  # the same real in another folder: a hard link, not a second copy
                link_or_copy(first, path)
            counts[folder] = counts.get(folder, 0) + 1
        if progress:
            progress(done, total)
    return counts


_DTYPES = {"string": "string", "int64": "int64", "double": "float64"}


def imagefolder_features(corpus: Corpus, file_column: bool = False) -> Any:
    """The declared `datasets.Features` of an imagefolder export (one definition for every split).

    With `file_column`, the metadata file's features: `file_name` (a string) in place of `image`.
    """
    import datasets

    features: dict[str, Any] = {
        "file_name" if file_column else IMAGE_COLUMN: datasets.Value("string") if file_column else datasets.Image(),
        "label": datasets.ClassLabel(names=list(LABELS)),
        "generator": datasets.ClassLabel(names=generator_names(corpus)),
        REGIONS_COLUMN: datasets.List(
            {
                "label": datasets.Value("string"),
                "box": datasets.List(datasets.Value("float64"), length=4),
                "note": datasets.Value("string"),
                "source": datasets.Value("string"),
            }
        ),
    }
    for field in MANIFEST_SCHEMA:
        if field.name not in features and field.name != "shard":
            features[field.name] = datasets.Value(_DTYPES[str(field.type)])
    if corpus.localized:
        features[MASK_PATH_COLUMN] = datasets.Value("string")
    return datasets.Features(features)


def generator_names(corpus: Corpus) -> list[str]:
    """The generators of the corpus's samples, sorted: the names of the `generator` ClassLabel."""
    return sorted({row["generator"] for row in corpus.rows if row["generator"]})


def imagefolder_card(corpus: Corpus, splits: list[str]) -> str:
    """README.md of an imagefolder export: per-split `configs` and declared features (`dataset_info`)."""
    from datasets.info import DatasetInfo, DatasetInfosDict
    from huggingface_hub import DatasetCardData

    card_data = DatasetCardData(
        configs=[
            {
                "config_name": "default",
                "data_files": [{"split": split, "path": f"{split}/**"} for split in splits],
                "default": True,
            }
        ]
    )
    infos = DatasetInfosDict({"default": DatasetInfo(features=imagefolder_features(corpus))})
    data = card_data.to_dict()
    infos.to_dataset_card_data(data)
    front = yaml.safe_dump(data, sort_keys=False).strip()
    return (
        f"---\n{front}\n---\n\n"
        "# imagefolder export (forgeset)\n\n"
        f"Load every split ({layout.HOLDOUT_SPLIT} is its own split) with declared features:\n\n"
        "```python\nimport datasets\nds = datasets.load_dataset('DIR')  # this folder\n```\n\n"
        "`label` and `generator` are ClassLabels (generator -1: no generator made the pixels). "
        f"torchvision: `ImageFolder('DIR/train')` sees the classes `{CLASS_FOLDERS['real']}` (0) and "
        f"`{CLASS_FOLDERS['fake']}` (1), the indices of `label`. "
        f"Masks, when the corpus has them, lie under `{layout.MASKS_DIR}/SPLIT/` (column `{MASK_PATH_COLUMN}`). "
        f"`{REGIONS_COLUMN}` lists each sample's annotated regions (label, relative box [x, y, w, h], note, "
        "source), empty when it has none.\n"
    )


def _export_imagefolder(corpus: Corpus, target: Path, progress: Progress | None) -> dict[str, int]:
    names = {name: index for index, name in enumerate(generator_names(corpus))}
    metadata: dict[str, list[dict]] = {}
    counts: dict[str, int] = {}
    total = len(corpus.rows)
    for done, sample in enumerate(corpus.iter_samples(), start=1):
        split, label = sample.split, sample.row["label"]
        folder = CLASS_FOLDERS[label]  # 0_real, 1_fake: ImageFolder's sorted class indices equal `label`
        file_name = f"{folder}/{sample.key}.{sample.image_member}"
        _write(corpus.path_inside(target, split, folder, f"{sample.key}.{sample.image_member}"), sample.image)
        entry: dict[str, Any] = {
            **sample.member_row,
            "file_name": file_name,
            "label": LABELS[label],
            "generator": names.get(sample.row["generator"] or "", NO_GENERATOR),
            REGIONS_COLUMN: _regions(sample),
        }
        if sample.mask is not None:  # a localized corpus: every sample has a mask (all-zero when unedited)
            mask_name = f"{sample.key}.{layout.MASK_EXTENSION}"
            _write(corpus.path_inside(target, layout.MASKS_DIR, split, mask_name), sample.mask)
            entry[MASK_PATH_COLUMN] = f"{layout.MASKS_DIR}/{split}/{mask_name}"
        metadata.setdefault(split, []).append(entry)
        counts[f"{split}/{folder}"] = counts.get(f"{split}/{folder}", 0) + 1
        if progress:
            progress(done, total)
    schema = imagefolder_features(corpus, file_column=True).arrow_schema  # with the features as schema metadata
    for split, entries in metadata.items():
        entries.sort(key=lambda e: e["key"])
        pq.write_table(pa.Table.from_pylist(entries, schema=schema), corpus.path_inside(target, split, METADATA_NAME))
    splits = [split for split in layout.ALL_SPLITS if split in metadata]
    (target / layout.CARD_NAME).write_text(imagefolder_card(corpus, splits), encoding="utf-8")
    write_imagefolder_croissant(corpus, target, splits, schema)
    return counts


def _regions(sample: CorpusSample) -> list[dict[str, Any]]:
    """The sample's KEY.ann.json regions as the `regions` column holds them (checked: the member is untrusted)."""
    data = sample.annotation
    if data is None:
        return []
    where = f"{sample.shard}: sample {sample.key}: {layout.ANN_MEMBER}"
    regions = parse_annotation(data, sample.row["width"], sample.row["height"], where)
    return [{"label": r.label, "box": list(r.box), "note": r.note, "source": r.source} for r in regions]


def write_imagefolder_croissant(corpus: Corpus, target: Path, splits: list[str], schema: pa.Schema) -> Path:
    """croissant.json of an imagefolder export: each split's metadata.parquet and one record set per split."""
    import mlcroissant as mlc

    types = {"string": mlc.DataType.TEXT, "int64": mlc.DataType.INTEGER, "double": mlc.DataType.FLOAT}
    files, record_sets = [], []
    for split in splits:
        file_id = f"{split}-metadata"
        files.append(
            mlc.FileObject(
                id=file_id,
                name=f"{split}/{METADATA_NAME}",
                content_url=f"{split}/{METADATA_NAME}",
                encoding_formats=["application/x-parquet"],
                sha256=file_sha256(corpus.path_inside(target, split, METADATA_NAME)),
            )
        )
        fields = [
            mlc.Field(
                id=f"{split}/{field.name}",
                name=field.name,
                data_types=[types[str(field.type)]],
                source=mlc.Source(file_object=file_id, extract=mlc.Extract(column=field.name)),
            )
            for field in schema
            if str(field.type) in types  # the nested `regions` column: its structure is the card's feature
        ]
        record_sets.append(mlc.RecordSet(id=split, name=split, key=f"{split}/key", fields=fields))
    metadata = mlc.Metadata(
        name=f"{corpus.name}-imagefolder",
        description=f"The imagefolder export of {corpus.name}: file_name is the image's path inside its split.",
        version="1.0.0",
        distribution=files,
        record_sets=record_sets,
    )
    path = target / layout.CROISSANT_NAME
    path.write_text(json.dumps(metadata.to_json(), indent=2, ensure_ascii=False), encoding="utf-8")
    return path


def export_corpus(
    out_dir: Path,
    target: Path,
    layout_name: str,
    *,
    cnn_layout: str = "per-generator",
    balance: bool = False,
    seed: int = 0,
    progress: Progress | None = None,
) -> dict[str, int]:
    """Write `out_dir` into `target` in format `layout_name`; return image counts per folder (relative path).

    The corpus is opened (and validated) before anything is written; every path is joined with
    `path_inside`, so no name from the corpus can place a file outside `target`. `progress` is
    called with (samples done, samples in all) after each sample.
    """
    if layout_name not in FORMATS:
        raise ValueError(f"unknown export format {layout_name!r}; choose one of {', '.join(FORMATS)}")
    if cnn_layout not in LAYOUTS:
        raise ValueError(f"unknown cnndetection layout {cnn_layout!r}; choose one of {', '.join(LAYOUTS)}")
    corpus = Corpus.open(out_dir)
    if layout_name == "cnndetection":
        return _export_cnndetection(corpus, target, cnn_layout, balance, seed, progress)
    return _export_imagefolder(corpus, target, progress)
