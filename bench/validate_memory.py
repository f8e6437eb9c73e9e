"""Benchmark: `forgeset validate` memory against corpus size (validate streams, so it should stay flat).

For each size a corpus of tiny (32 px) samples is synthesised straight into shards with the real
ShardWriter and the project's finalize (no generator runs: this measures validate, not build),
then `forgeset validate OUT --detectors spectrum --epochs 1` runs as a fresh subprocess. Its wall
time and peak RSS (ru_maxrss of that process and its children, from wait4) are printed.

    python bench/validate_memory.py [--sizes 10000,100000] [--detector spectrum] [--keep DIR]

Prints one JSON line per size and one with the RSS ratio of the largest size to the smallest
(issue 11's target: 100k within 2x of 10k).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml
from PIL import Image

from forgeset.imaging.policy import ImagePolicy
from forgeset.manifests import layout
from forgeset.manifests.index import finalize
from forgeset.manifests.schema import SampleRecord
from forgeset.manifests.shard_writer import ShardWriter

SIZE = 32
SHARD_SAMPLES = 1000
# (split, share of the corpus); fakes are half of every split.
SPLIT_SHARES = (("train", 0.7), ("val", 0.1), ("test", 0.2))
GENERATORS = ("synth-a", "synth-b")


def _image(rng: np.random.Generator, fake: bool) -> bytes:
    """Smooth noise for a real; the same with a faint periodic pattern for a fake (so there is something to learn)."""
    base = rng.normal(128, 30, (SIZE // 4, SIZE // 4, 3)).clip(0, 255).astype(np.uint8)
    pixels = np.asarray(Image.fromarray(base).resize((SIZE, SIZE), Image.Resampling.BILINEAR), dtype=np.int16)
    if fake:
        pixels = pixels + 6 * ((np.indices((SIZE, SIZE)).sum(axis=0) % 2)[..., None] * 2 - 1)
    buffer = io.BytesIO()
    Image.fromarray(pixels.clip(0, 255).astype(np.uint8)).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def _record(key: str, split: str, shard: str, fake: bool, index: int, data: bytes) -> SampleRecord:
    generator = GENERATORS[index % len(GENERATORS)] if fake else None
    return SampleRecord(
        key=key,
        split=split,
        label="fake" if fake else "real",
        kind="text2image" if fake else "real",
        group=key,
        source=None if fake else "synth:noise",
        license=None,
        caption=None,
        generator=generator,
        model=None,
        revision=None,
        pipeline=None,
        scheduler=None,
        scheduler_config=None,
        prompt=None,
        prompt_used=None,
        prompt_base=None,
        seed=index,
        steps=None,
        guidance=None,
        dtype=None,
        device=None,
        gen_size=None,
        diffusers_version=None,
        torch_version=None,
        parent_key=None,
        perturbation=None,
        perturb_seeds=None,
        strength=None,
        mask_area=None,
        psnr=None,
        ssim=None,
        width=SIZE,
        height=SIZE,
        format="png",
        quality=-1,
        ops="[]",
        sha256=hashlib.sha256(data).hexdigest(),
        bytes=len(data),
        shard=shard,
    )


def synthesise(out: Path, samples: int, seed: int = 0) -> None:
    """A finished corpus of `samples` tiny images in shards of SHARD_SAMPLES, written as a build writes them."""
    rng = np.random.default_rng(seed)
    policy = ImagePolicy(size=SIZE)
    name = f"synth-{samples}"
    spec = {"name": name, "image": policy.model_dump(mode="json"), "samples": samples}
    out.mkdir(parents=True)
    text = yaml.safe_dump(spec)
    (out / layout.RESOLVED_SPEC_NAME).write_text(text)
    states: list[tuple[str, Path]] = []
    serial = 0
    for split, share in SPLIT_SHARES:
        count = int(samples * share)
        for shard_index, start in enumerate(range(0, count, SHARD_SAMPLES)):
            shard = layout.shard_path(split, shard_index)
            members, records = [], []
            for _ in range(start, min(count, start + SHARD_SAMPLES)):
                fake = serial % 2 == 1
                key = f"s{serial:08d}"
                data = _image(rng, fake)
                record = _record(key, split, shard, fake, serial // 2, data)
                members.append(
                    {
                        "__key__": key,
                        layout.image_member("png"): data,
                        layout.JSON_MEMBER: record.member_json(),
                        layout.CLS_MEMBER: record.member_cls(),
                    }
                )
                records.append(record)
                serial += 1
            writer = ShardWriter(out, split, shard_index)
            writer.finish(members, records, [])
            states.append((split, writer.state))
    finalize(
        out,
        name,
        hashlib.sha256(text.encode()).hexdigest(),
        policy.model_dump(mode="json"),
        layout.sample_members(["png"], localized=False),
        states,
    )


def run_validate(out: Path, detector: str) -> dict[str, float]:
    """`forgeset validate` in a fresh process: wall seconds and its peak RSS in MiB (ru_maxrss, KiB on Linux)."""
    command = [sys.executable, "-m", "forgeset.cli", "validate", str(out), "--detectors", detector, "--epochs", "1"]
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode:
        stderr = process.stderr.read().decode() if process.stderr else ""
        raise SystemExit(f"validate failed on {out} (exit {process.returncode}): {stderr[-2000:]}")
    return {"wall_s": round(wall, 2), "peak_rss_mib": round(usage.ru_maxrss / 1024, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000", help="comma-separated sample counts")
    parser.add_argument("--detector", default="spectrum", help="one cheap detector, trained for 1 epoch")
    parser.add_argument("--keep", type=Path, help="write the corpora here and keep them (default: a temp dir)")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    with tempfile.TemporaryDirectory() as temporary:
        root = args.keep or Path(temporary)
        figures = {}
        for samples in sizes:
            out = root / f"synth-{samples}"
            started = time.perf_counter()
            synthesise(out, samples)
            synth_s = round(time.perf_counter() - started, 2)
            figures[samples] = run_validate(out, args.detector)
            line = {"samples": samples, "detector": args.detector, "synthesise_s": synth_s, **figures[samples]}
            line["samples_per_s"] = round(samples / figures[samples]["wall_s"], 1)
            print(json.dumps(line), flush=True)
    smallest, largest = min(sizes), max(sizes)
    if smallest != largest:
        ratio = figures[largest]["peak_rss_mib"] / figures[smallest]["peak_rss_mib"]
        print(json.dumps({"rss_ratio": round(ratio, 2), "of": [largest, smallest], "target": "< 2"}))


if __name__ == "__main__":
    main()
