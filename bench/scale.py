"""Build, verify and validate tiny corpora of growing size; print samples/s and peak memory per step.

    HF_HUB_OFFLINE=1 python bench/scale.py                 # 1k, 10k, 100k samples
    HF_HUB_OFFLINE=1 python bench/scale.py --sizes 1000,10000 --executor local

Each size is half reals (a folder of synthetic 32 px PNGs written once per size) and half
text2image fakes from builtin:tiny-sd at 32 px with one step. Every step runs the real CLI in a
subprocess; a sampler polls the process tree every 0.2 s and keeps the peak RSS of the driver (the
CLI process) and of the whole tree (the driver plus Ray's raylet and workers, which descend from it).

Goals (issue 11): the rate at 100k within 20 % of the rate at 10k, and the driver's peak RSS growing
less than 2x from 10k to 100k.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import psutil
import yaml
from PIL import Image

FORGESET = [sys.executable, "-m", "forgeset.cli"]
IMAGE_SIZE = 32


@dataclass
class StepFigures:
    """Wall time and peak memory of one CLI step."""

    seconds: float
    driver_mib: float
    tree_mib: float


def _tree_rss(process: psutil.Process) -> tuple[int, int]:
    """RSS of `process` and of it plus every descendant (bytes); vanished processes count 0."""
    try:
        driver = process.memory_info().rss
        children = process.children(recursive=True)
    except psutil.Error:
        return 0, 0
    total = driver
    for child in children:
        try:
            total += child.memory_info().rss
        except psutil.Error:
            continue
    return driver, total


def run_step(args: list[str], env: dict[str, str]) -> StepFigures:
    """Run one CLI command to completion, sampling its memory; raise if it fails."""
    start = time.perf_counter()
    child = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    watched = psutil.Process(child.pid)
    peaks = [0, 0]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            driver, tree = _tree_rss(watched)
            peaks[0], peaks[1] = max(peaks[0], driver), max(peaks[1], tree)
            done.wait(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    output, _ = child.communicate()
    done.set()
    sampler.join()
    seconds = time.perf_counter() - start
    if child.returncode != 0:
        raise SystemExit(f"{' '.join(args[2:])} exited {child.returncode}:\n{output[-3000:]}")
    return StepFigures(seconds, peaks[0] / 2**20, peaks[1] / 2**20)


def write_reals(folder: Path, count: int) -> None:
    """`count` distinct 32 px PNGs (seeded gradients and noise); reused when already complete."""
    marker = folder / ".complete"
    if marker.exists() and marker.read_text() == str(count):
        return
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    ramp = np.linspace(0, 255, IMAGE_SIZE, dtype=np.float32)
    for index in range(count):
        base = rng.integers(0, 256, 3).astype(np.float32)
        noise = rng.normal(0, 12, (IMAGE_SIZE, IMAGE_SIZE, 3))
        pixels = ramp[None, :, None] * 0.5 + base[None, None, :] * 0.5 + noise
        Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(folder / f"{index:07d}.png", compress_level=1)
    marker.write_text(str(count))


def write_spec(folder: Path, reals: Path, samples: int) -> Path:
    """A spec of `samples` samples: half reals from `reals`, half tiny-sd fakes."""
    spec = {
        "name": f"scale-{samples}",
        "seed": 0,
        "image": {"size": IMAGE_SIZE, "format": "png", "png_compression": 1},
        "shards": {"size": 500},
        "real": [{"type": "folder", "path": str(reals)}],
        "prompts": {"type": "templates", "classes": ["cat", "dog", "car", "boat", "tree"]},
        "generate": [
            {
                "type": "text2image",
                "model": "builtin:tiny-sd",
                "count": samples - samples // 2,
                "steps": 1,
                "guidance": 1.0,
                "batch_size": 64,
            }
        ],
    }
    path = folder / f"scale-{samples}.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000,100000", help="comma-separated corpus sizes")
    parser.add_argument("--work", type=Path, default=Path("/tmp/forgeset-scale"), help="scratch folder")
    parser.add_argument("--executor", default="ray", choices=["ray", "local", "auto"])
    parser.add_argument("--detectors", default="spectrum", help="validate's detectors (cheap by default)")
    parser.add_argument("--skip-validate", action="store_true")
    options = parser.parse_args()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "NO_ALBUMENTATIONS_UPDATE": "1"}
    options.work.mkdir(parents=True, exist_ok=True)
    print(f"cores: {os.cpu_count()}, executor: {options.executor}, image {IMAGE_SIZE} px, tiny-sd 1 step")
    header = f"{'samples':>8} {'step':<9} {'seconds':>8} {'samples/s':>10} {'driver MiB':>11} {'tree MiB':>9}"
    print(header)
    for samples in (int(size) for size in options.sizes.split(",")):
        reals = options.work / f"reals-{samples // 2}"
        write_reals(reals, samples // 2)
        spec = write_spec(options.work, reals, samples)
        out = options.work / f"out-{samples}"
        shutil.rmtree(out, ignore_errors=True)
        steps = {
            "build": [
                *FORGESET,
                *("build", "dataset", "--spec", str(spec), "--out", str(out), "--fresh"),
                *("--executor", options.executor),
            ],
            "verify": [*FORGESET, "verify", str(out)],
        }
        if not options.skip_validate:
            steps["validate"] = [*FORGESET, "validate", str(out), "--detectors", options.detectors, "--epochs", "1"]
        for name, args in steps.items():
            figures = run_step(args, env)
            rate = samples / figures.seconds
            print(
                f"{samples:>8} {name:<9} {figures.seconds:>8.1f} {rate:>10.1f} "
                f"{figures.driver_mib:>11.0f} {figures.tree_mib:>9.0f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
