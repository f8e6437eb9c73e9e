"""Benchmark: `forgeset curate`'s import against FiftyOne's bare `add_samples` with the same fields.

A corpus of N real images (random 32 px PNGs from a folder source, built by the local executor)
is imported three ways, interleaved and repeated, on a FiftyOne database of its own:

- bare: `fo.Sample`s built from the manifest rows with the fields curate sets, then one
  `Dataset.add_samples` (the images already extracted: FiftyOne's floor for these fields);
- import: `forgeset.annotate.curation.import_samples` into a fresh media folder (reads the shards,
  writes images and masks, computes embeddings, adds in batches);
- curate: `import_corpus`, the whole command (import, brain runs, saved views).

    python bench/curate_speed.py [--samples 5000] [--repeats 3] [--corpus OUT]

`--corpus` benchmarks an existing corpus instead (after `validate`, detector inference is part of
the import). Prints one JSON line per measurement and one with the medians and the ratio of the
import rate to the bare rate (the goal: at least 1/3).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("FIFTYONE_DO_NOT_TRACK", "true")
os.environ.setdefault("FIFTYONE_DATABASE_VALIDATION", "false")
os.environ.setdefault("FIFTYONE_DATABASE_DIR", tempfile.mkdtemp(prefix="forgeset-bench-fiftyone-"))
os.environ["FIFTYONE_DATABASE_NAME"] = f"forgeset-bench-{os.getpid()}"


def build_corpus(samples: int, folder: Path) -> Path:
    """A reals-only corpus of `samples` distinct random 32 px images, shards of 256."""
    import numpy as np
    import yaml
    from PIL import Image

    from forgeset.builders.build import build_dataset
    from forgeset.builders.executors import LocalExecutor
    from forgeset.builders.spec import load_spec

    images = folder / "photos"
    images.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for index in range(samples):
        Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(images / f"p{index:07d}.png")
    spec = {
        "name": "curate-bench",
        "seed": 1,
        "image": {"size": 32},
        "shards": {"size": 256},
        "real": [{"type": "folder", "name": "photos", "path": str(images)}],
        "generate": [],
        "splits": {"train": 0.8, "val": 0.1, "test": 0.1},
    }
    (folder / "spec.yaml").write_text(yaml.safe_dump(spec))
    build_dataset(load_spec(folder / "spec.yaml"), folder / "out", executor=LocalExecutor())
    return folder / "out"


def bare_add_samples(fo: Any, rows: list[dict[str, Any]], dataset: Any) -> Any:
    """What a FiftyOne user writes for the same fields: build the samples, add them in one call."""
    from forgeset.annotate.curation import FIELDS

    samples = []
    for row in rows:
        sample = fo.Sample(filepath=row["filepath"], tags=[row["split"]])
        sample["ground_truth"] = fo.Classification(label=row["label"])
        for name in FIELDS:
            sample[name] = row.get(name)
        if row["mask_path"]:
            sample["mask"] = fo.Segmentation(mask_path=row["mask_path"])
        samples.append(sample)
    dataset.add_samples(samples, progress=False)
    return dataset


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=5000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--corpus", type=Path, help="an existing corpus instead of a synthetic one")
    args = parser.parse_args()

    import fiftyone as fo

    from forgeset.annotate.curation import import_corpus, import_samples
    from forgeset.manifests.corpus import Corpus

    with tempfile.TemporaryDirectory(prefix="forgeset-curate-bench-") as scratch:
        root = Path(scratch)
        out = args.corpus or build_corpus(args.samples, root / "corpus")
        corpus = Corpus.open(out)
        count = corpus.table.num_rows
        # Extract once for the bare side (its images must exist where its filepaths point).
        dataset, _ = import_samples(corpus, "bench-extract", root / "bare-media")
        masks = dataset.values("mask.mask_path") if dataset.has_field("mask") else [None] * count
        rows = [
            {**row, "filepath": path, "mask_path": mask}
            for row, path, mask in zip(corpus.rows, dataset.values("filepath"), masks, strict=True)
        ]
        dataset.delete()
        rates: dict[str, list[float]] = {"bare": [], "import": [], "curate": []}
        for repeat in range(args.repeats):
            for side in rates:
                media = root / f"media-{side}-{repeat}"
                start = time.perf_counter()
                if side == "bare":
                    dataset = bare_add_samples(fo, rows, fo.Dataset())
                elif side == "import":
                    dataset, _ = import_samples(Corpus.open(out), f"bench-import-{repeat}", media)
                else:
                    dataset = import_corpus(out, f"bench-curate-{repeat}", media)
                seconds = time.perf_counter() - start
                assert len(dataset) == count, (side, len(dataset), count)
                dataset.delete()
                rates[side].append(count / seconds)
                print(json.dumps({"side": side, "repeat": repeat, "samples": count, "seconds": round(seconds, 3)}))
        medians = {side: round(statistics.median(values), 1) for side, values in rates.items()}
        print(
            json.dumps(
                {
                    "what": "samples_per_s_median",
                    "samples": count,
                    **medians,
                    "import_over_bare": round(medians["import"] / medians["bare"], 3),
                    "goal": ">= 0.333",
                }
            )
        )


if __name__ == "__main__":
    main()
