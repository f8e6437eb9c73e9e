"""Benchmark: forgeset's build against the best plain baseline on the same cores.

Both make the same number of images with the same builtin tiny pipeline, the same steps, batch
size and size, and write PNGs at the same zlib level. The baseline is what gets the most out of
N cores without forgeset: N plain Python processes, each pinned to one torch thread (as forgeset
pins one thread per model host, for reproducible bytes), each generating its share of the images
in a loop and saving PNGs. A single multi-threaded loop is not the baseline: under neighbours'
load it loses 4-7x and flatters forgeset. forgeset plans, generates and writes shards (tar,
manifest, index). Every run is a fresh set of processes timed end to end (imports, model load
and Ray start-up included); the two sides alternate, and medians are reported.

    python bench/build_overhead.py [--count 512] [--size 64] [--steps 1] [--batch 8] [--workers 2]
                                   [--repeats 3] [--executor auto]

Prints one JSON line per run and a summary line with the medians and the ratio (forgeset's
images/s over the baseline's; 1.0 or more means forgeset is at least as fast).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

PROMPTS = ["a photo of a cat", "a photo of a dog", "a photo of a car", "a photo of a house"]


def plain_loop(indices: range, size: int, steps: int, batch: int, folder: Path) -> None:
    """What a researcher writes, on one torch thread: load a pipeline, loop over batches, save PNGs."""
    import torch
    from diffusers import AutoPipelineForText2Image

    from forgeset.generators.builtin import materialize_builtin

    torch.set_num_threads(1)
    pipe = AutoPipelineForText2Image.from_pretrained(materialize_builtin("builtin:tiny-sd"), use_safetensors=True)
    pipe.set_progress_bar_config(disable=True)
    folder.mkdir(parents=True, exist_ok=True)
    for start in range(indices.start, indices.stop, batch):
        chunk = range(start, min(start + batch, indices.stop))
        images = pipe(
            [PROMPTS[i % len(PROMPTS)] for i in chunk],
            num_inference_steps=steps,
            guidance_scale=5.0,
            height=size,
            width=size,
            generator=[torch.Generator().manual_seed(i) for i in chunk],
        ).images
        for i, image in zip(chunk, images, strict=True):
            image.save(folder / f"{i:06d}.png", compress_level=1)


def forgeset_spec(count: int, size: int, steps: int, batch: int) -> dict:
    """The same job as a forgeset spec (fakes only, same PNG level)."""
    return {
        "name": "bench",
        "image": {"size": size, "png_compression": 1},
        "shards": {"size": 64},
        "prompts": {"type": "templates", "templates": ["a photo of a {}"], "classes": ["cat", "dog", "car", "house"]},
        "generate": [
            {
                "type": "text2image",
                "model": "builtin:tiny-sd",
                "count": count,
                "steps": steps,
                "guidance": 5.0,
                "batch_size": batch,
            }
        ],
    }


ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "NO_ALBUMENTATIONS_UPDATE": "1"}


def timed_plain(args: argparse.Namespace, folder: Path) -> float:
    """Wall-clock seconds of `workers` single-thread plain processes, each making its share, run at once."""
    share = -(-args.count // args.workers)
    start = time.perf_counter()
    processes = []
    for worker in range(args.workers):
        first, last = worker * share, min(args.count, (worker + 1) * share)
        command = [sys.executable, __file__, "--plain-into", str(folder), "--plain-range", f"{first}:{last}"]
        command += ["--size", str(args.size), "--steps", str(args.steps), "--batch", str(args.batch)]
        processes.append(subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV))
    for process in processes:
        if process.wait() != 0:
            raise SystemExit(f"a plain process failed with {process.returncode}")
    seconds = time.perf_counter() - start
    if len(list(folder.glob("*.png"))) != args.count:
        raise SystemExit(f"the plain processes wrote {len(list(folder.glob('*.png')))} images, not {args.count}")
    return seconds


def timed_forgeset(args: argparse.Namespace, spec: Path, out: Path) -> float:
    """Wall-clock seconds of one `forgeset build dataset` (a fresh build)."""
    command = [sys.executable, "-m", "forgeset.cli", "build", "dataset", "--spec", str(spec), "--out", str(out)]
    command += ["--workers", str(args.workers), "--executor", args.executor, "--fresh"]
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=512)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=1)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--executor", default="auto", choices=["auto", "ray", "local"])
    parser.add_argument("--plain-into", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--plain-range", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.plain_into:
        first, last = (int(part) for part in args.plain_range.split(":"))
        plain_loop(range(first, last), args.size, args.steps, args.batch, args.plain_into)
        return

    from forgeset.generators.builtin import materialize_builtin

    materialize_builtin("builtin:tiny-sd")  # build the cache once, outside every timing
    shape = {"count": args.count, "size": args.size, "steps": args.steps, "batch": args.batch, "workers": args.workers}
    times: dict[str, list[float]] = {"plain": [], "forgeset": []}
    with tempfile.TemporaryDirectory(prefix="forgeset-bench-") as scratch:
        root = Path(scratch)
        spec = root / "spec.yaml"
        spec.write_text(yaml.safe_dump(forgeset_spec(args.count, args.size, args.steps, args.batch)))
        for repeat in range(args.repeats):
            # Alternate which side goes first, so a drift in the machine's load hits both alike.
            sides = ["plain", "forgeset"] if repeat % 2 == 0 else ["forgeset", "plain"]
            for side in sides:
                if side == "plain":
                    seconds = timed_plain(args, root / f"plain{repeat}")
                else:
                    seconds = timed_forgeset(args, spec, root / "out")
                times[side].append(seconds)
                print(json.dumps({"what": side, "repeat": repeat, **shape, "seconds": round(seconds, 2)}), flush=True)
    plain_s, forgeset_s = statistics.median(times["plain"]), statistics.median(times["forgeset"])
    summary = {
        "what": "median",
        **shape,
        "executor": args.executor,
        "plain_s": round(plain_s, 2),
        "forgeset_s": round(forgeset_s, 2),
        "plain_images_per_s": round(args.count / plain_s, 2),
        "forgeset_images_per_s": round(args.count / forgeset_s, 2),
        "ratio_forgeset_over_plain": round(plain_s / forgeset_s, 3),
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
