"""Per-split real/fake counts of specs/forensics-mix.yaml as each consumer reads them, beside the manifest.

    HF_HUB_OFFLINE=1 python bench/consumer_counts.py

Builds the corpus, then counts through the imagefolder export (HF datasets), the Hub release layout
(HF datasets), webdataset with a 2-worker torch DataLoader, croissant.json (mlcroissant) and
FiftyOne (curate); prints a Markdown table. Every row should equal the manifest's.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

SPLITS = ("train", "val", "test", "test_ood")
FORGESET = [sys.executable, "-m", "forgeset.cli"]


def run(*args: str) -> None:
    """A forgeset CLI command; its output is kept quiet unless it fails."""
    subprocess.run([*FORGESET, *args], check=True, capture_output=True)


def main() -> None:
    os.environ.update(
        HF_HUB_OFFLINE="1",
        HF_DATASETS_OFFLINE="1",
        NO_ALBUMENTATIONS_UPDATE="1",
        FIFTYONE_DO_NOT_TRACK="true",
        FIFTYONE_DATABASE_VALIDATION="false",
        FIFTYONE_DATABASE_NAME="forgeset-consumer-counts",
    )
    import datasets
    import fiftyone as fo
    import mlcroissant as mlc
    import pyarrow.parquet as pq
    import webdataset as wds
    from torch.utils.data import DataLoader

    work = Path("/tmp/forgeset-consumer-counts")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    out = work / "mix"
    run("build", "dataset", "--spec", "specs/forensics-mix.yaml", "--out", str(out))
    counts: dict[str, Counter[tuple[str, str]]] = {}

    def tally(name: str, pairs: Iterable[tuple[str, str]]) -> None:
        counts[name] = Counter(pairs)

    tally("manifest", ((r["split"], r["label"]) for r in pq.read_table(out / "manifest.parquet").to_pylist()))
    run("export", str(out), str(work / "imagefolder"), "--format", "imagefolder")
    exported = datasets.load_dataset(str(work / "imagefolder"), cache_dir=str(work / "cache-a"))
    tally(
        "imagefolder export (datasets)",
        ((s, exported[s].features["label"].int2str(v)) for s in exported for v in exported[s]["label"]),
    )
    run("publish", str(out), "--repo-id", "forensics/mix", "--dry-run", str(work / "release"))
    release = datasets.load_dataset(str(work / "release"), cache_dir=str(work / "cache-b"))
    tally(
        "Hub release (datasets)",
        ((s, release[s].features["cls"].int2str(v)) for s in release for v in release[s]["cls"]),
    )
    pairs: list[tuple[str, str]] = []
    for split in SPLITS:
        urls = sorted(str(path) for path in (out / split).glob("*.tar"))
        dataset = wds.WebDataset(urls, shardshuffle=False, nodesplitter=wds.split_by_node).to_tuple("__key__", "cls")
        for _, labels in DataLoader(dataset, batch_size=16, num_workers=2):
            pairs += [(split, "fake" if int(label) else "real") for label in labels]
    tally("webdataset, DataLoader 2 workers", pairs)
    records = mlc.Dataset(jsonld=str(out / "croissant.json")).records("samples")
    tally("croissant.json (mlcroissant)", ((r["samples/split"].decode(), r["samples/label"].decode()) for r in records))
    run("curate", str(out), "--name", "forgeset-consumer-counts")
    curated = fo.load_dataset("forgeset-consumer-counts")
    tally("FiftyOne (curate)", zip(curated.values("split"), curated.values("ground_truth.label"), strict=True))
    print("| consumer | " + " | ".join(f"{split} real/fake" for split in SPLITS) + " |")
    print("|---|" + "---|" * len(SPLITS))
    for name, counter in counts.items():
        cells = " | ".join(f"{counter[(s, 'real')]}/{counter[(s, 'fake')]}" for s in SPLITS)
        print(f"| {name} | {cells} |")


if __name__ == "__main__":
    main()
