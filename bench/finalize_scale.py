"""Benchmark: finalize on a synthetic corpus of N rows in S per-shard row files (no images needed).

The rows look like a real build's (every manifest column, prompts and recipes of realistic
length, a quarter of them degraded copies with a parent); the shard tars are not written, only
the row files and done-markers finalize reads. finalize runs in a fresh child process so its
peak RSS is its own.

    python bench/finalize_scale.py [--rows 1000000] [--shards 1000] [--folder DIR]

Prints one JSON line: rows, shards, seconds, rows/s, peak RSS of the finalize process (MiB) and
bytes of RSS per row above the child's start-up.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import json
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from forgeset.manifests.layout import Layout, shard_path
from forgeset.manifests.schema import MANIFEST_SCHEMA, REJECTS_SCHEMA
from forgeset.manifests.shard_writer import ShardMarker

SPLITS = ("train", "val", "test")


def _shard_rows(split: str, index: int, start: int, count: int, rng: np.random.Generator) -> pa.Table:
    """`count` plausible manifest rows of one shard (keys start..start+count)."""
    numbers = np.arange(start, start + count)
    keys = [f"s{n:09d}" for n in numbers]
    fake = rng.random(count) < 0.5
    degraded = rng.random(count) < 0.25
    columns: dict[str, list] = {name: [None] * count for name in MANIFEST_SCHEMA.names}
    columns["key"] = keys
    columns["split"] = [split] * count
    columns["label"] = ["fake" if f else "real" for f in fake]
    columns["kind"] = ["text2image" if f else "real" for f in fake]
    columns["group"] = [f"g{n // 4:09d}" for n in numbers]
    columns["source"] = [None if f else f"photos:img/{n}.jpg" for n, f in zip(numbers, fake, strict=True)]
    columns["generator"] = ["tiny-sd" if f else None for f in fake]
    columns["model"] = ["org/some-diffusion-model" if f else None for f in fake]
    columns["prompt"] = ["a photo of a cat sitting on a wooden table, natural light" if f else None for f in fake]
    columns["seed"] = [int(n) if f else None for n, f in zip(numbers, fake, strict=True)]
    columns["steps"] = [30 if f else None for f in fake]
    columns["guidance"] = [7.5 if f else None for f in fake]
    columns["parent_key"] = [keys[i - 1] if d and i > 0 else None for i, d in enumerate(degraded)]
    columns["perturbation"] = ["jpeg" if p else None for p in columns["parent_key"]]
    columns["width"] = [256] * count
    columns["height"] = [256] * count
    columns["format"] = ["png"] * count
    columns["quality"] = [-1] * count
    columns["ops"] = ["resize:256"] * count
    columns["sha256"] = [hashlib.sha256(k.encode()).hexdigest() for k in keys]
    columns["bytes"] = rng.integers(50_000, 150_000, count).tolist()
    columns["shard"] = [shard_path(split, index)] * count
    return pa.table(columns, schema=MANIFEST_SCHEMA)


def synthesize(folder: Path, rows: int, shards: int) -> list[tuple[str, Path]]:
    """Write the row files, empty rejects and done-markers; return finalize's shard states."""
    layout = Layout(folder)
    layout.shard_states.mkdir(parents=True, exist_ok=True)
    (folder / "spec.resolved.yaml").write_text("name: bench\n")
    rng = np.random.default_rng(0)
    states, start = [], 0
    per_shard = rows // shards
    for number in range(shards):
        split = SPLITS[number % len(SPLITS)]
        index = number // len(SPLITS)
        count = per_shard + (1 if number < rows % shards else 0)
        state = layout.shard_state(split, index)
        pq.write_table(_shard_rows(split, index, start, count, rng), Layout.rows_file(state))
        pq.write_table(REJECTS_SCHEMA.empty_table(), Layout.rejects_file(state))
        marker = ShardMarker(shard_path(split, index), count, 0, "0" * 64, 0)
        Layout.marker_file(state).write_text(json.dumps(asdict(marker)))
        states.append((split, state))
        start += count
    return states


def child(folder: Path) -> None:
    """Run finalize on the synthesized states and print seconds and peak RSS."""
    # Imported before the baseline: the probe's fixed cost is not per row.
    for module in ("sklearn.linear_model", "sklearn.model_selection", "sklearn.metrics", "pyarrow.acero"):
        importlib.import_module(module)

    from forgeset.manifests.index import finalize

    states_file = json.loads((folder / "states.json").read_text())
    states = [(split, Path(state)) for split, state in states_file]
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    index = finalize(folder, "bench", "0" * 64, {"size": 256}, ["cls", "json", "png"], states)
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"samples": index["samples"], "seconds": seconds, "peak_kib": peak, "baseline_kib": baseline}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--shards", type=int, default=1000)
    parser.add_argument("--folder", type=Path, default=None)
    parser.add_argument("--child", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child)
        return
    folder = args.folder or Path(tempfile.mkdtemp(prefix="forgeset-finalize-bench-"))
    started = time.perf_counter()
    states = synthesize(folder, args.rows, args.shards)
    synth_seconds = time.perf_counter() - started
    (folder / "states.json").write_text(json.dumps([(split, str(state)) for split, state in states]))
    result = subprocess.run(
        [sys.executable, __file__, "--child", str(folder)], check=True, capture_output=True, text=True
    )
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    print(
        json.dumps(
            {
                "rows": figures["samples"],
                "shards": args.shards,
                "synthesize_s": round(synth_seconds, 1),
                "finalize_s": round(figures["seconds"], 2),
                "rows_per_s": round(figures["samples"] / figures["seconds"]),
                "peak_rss_mib": round(figures["peak_kib"] / 1024, 1),
                "rss_bytes_per_row": round(
                    (figures["peak_kib"] - figures["baseline_kib"]) * 1024 / max(figures["samples"], 1)
                ),
                "folder": str(folder),
            }
        )
    )


if __name__ == "__main__":
    main()
