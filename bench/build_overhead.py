"""Benchmark: forgeset's build against the plain Python loop a researcher would write.

Both make the same number of images with the same builtin tiny pipeline, the same steps, batch
size and size, and write PNGs at the same zlib level. The plain loop is one process with torch's
default thread count that generates a batch, then encodes and saves it. forgeset plans, generates
on Ray actors and writes shards (tar, manifest, index) in parallel tasks. Each side runs as a
fresh subprocess and is timed end to end (imports, model load and Ray start-up included).

    python bench/build_overhead.py [--count 2048] [--size 128] [--steps 10] [--batch 8] [--workers 2]

Prints one JSON line per side and one with the ratio (forgeset images/s over plain images/s).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

PROMPTS = ["a photo of a cat", "a photo of a dog", "a photo of a car", "a photo of a house"]


def plain_loop(count: int, size: int, steps: int, batch: int, folder: Path) -> None:
    """What a researcher writes: load a pipeline, loop over batches, save PNGs."""
    import torch
    from diffusers import AutoPipelineForText2Image

    from forgeset.generators.builtin import materialize_builtin

    pipe = AutoPipelineForText2Image.from_pretrained(materialize_builtin("builtin:tiny-sd"), use_safetensors=True)
    pipe.set_progress_bar_config(disable=True)
    folder.mkdir(parents=True, exist_ok=True)
    for start in range(0, count, batch):
        indices = range(start, min(start + batch, count))
        images = pipe(
            [PROMPTS[i % len(PROMPTS)] for i in indices],
            num_inference_steps=steps,
            guidance_scale=5.0,
            height=size,
            width=size,
            generator=[torch.Generator().manual_seed(i) for i in indices],
        ).images
        for i, image in zip(indices, images, strict=True):
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


def timed(command: list[str]) -> float:
    """Wall-clock seconds of a subprocess that must succeed."""
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=2048)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--plain-into", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.plain_into:
        plain_loop(args.count, args.size, args.steps, args.batch, args.plain_into)
        return

    from forgeset.generators.builtin import materialize_builtin

    materialize_builtin("builtin:tiny-sd")  # build the cache once, outside both timings
    shape = {"count": args.count, "size": args.size, "steps": args.steps, "batch": args.batch}
    with tempfile.TemporaryDirectory(prefix="forgeset-bench-") as scratch:
        root = Path(scratch)
        sizes = ["--count", str(args.count), "--size", str(args.size), "--steps", str(args.steps)]
        plain_s = timed(
            [sys.executable, __file__, "--plain-into", str(root / "plain"), *sizes, "--batch", str(args.batch)]
        )
        print(
            json.dumps(
                {
                    "what": "plain_loop",
                    **shape,
                    "seconds": round(plain_s, 2),
                    "images_per_s": round(args.count / plain_s, 2),
                }
            ),
            flush=True,
        )
        spec = root / "spec.yaml"
        spec.write_text(yaml.safe_dump(forgeset_spec(args.count, args.size, args.steps, args.batch)))
        forgeset = [sys.executable, "-m", "forgeset.cli", "build", "dataset", "--spec", str(spec)]
        forgeset_s = timed([*forgeset, "--out", str(root / "out"), "--workers", str(args.workers)])
        print(
            json.dumps(
                {
                    "what": "forgeset_build",
                    **shape,
                    "workers": args.workers,
                    "seconds": round(forgeset_s, 2),
                    "images_per_s": round(args.count / forgeset_s, 2),
                }
            ),
            flush=True,
        )
        print(json.dumps({"what": "ratio_forgeset_over_plain", "ratio": round(plain_s / forgeset_s, 3)}))


if __name__ == "__main__":
    main()
