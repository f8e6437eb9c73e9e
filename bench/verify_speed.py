"""Benchmark: `forgeset verify` against `sha256sum` on the same shards.

Writes a corpus of M shards of N samples each through the real ShardWriter and finalize (noise
PNGs, so they do not compress: the bytes a real corpus has), then times, each on a warm page
cache: `sha256sum` over the tars, verify --hash-only and the full verify (every sample decoded)
with 1 and 2 worker processes (or --jobs). Rates are shard MB per second of the whole command,
fixed costs included (opening and checking the manifest, the probe refit, starting workers):
use a corpus of a few hundred MB or more for rates that mean anything.

    python bench/verify_speed.py [--shards 16] [--per-shard 128] [--size 256] [--jobs 1 2] [--folder DIR]

Prints one JSON line per measurement and a last one with hash-only's rate over sha256sum's.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from forgeset.imaging.policy import ImagePolicy
from forgeset.manifests import layout
from forgeset.manifests.index import finalize
from forgeset.manifests.layout import Layout
from forgeset.manifests.schema import SampleRecord
from forgeset.manifests.verify import verify_corpus

SPLITS = ("train", "val", "test")


def _record(key: str, split: str, label: str, image: bytes, size: int, shard: str) -> SampleRecord:
    fake = label == "fake"
    nulls = {name: None for name in SampleRecord.__dataclass_fields__}
    fields = {
        **nulls,
        "key": key,
        "split": split,
        "label": label,
        "kind": "text2image" if fake else "real",
        "group": key,
        "source": None if fake else f"noise:{key}",
        "generator": "noise" if fake else None,
        "width": size,
        "height": size,
        "format": "png",
        "quality": -1,
        "ops": "",
        "sha256": hashlib.sha256(image).hexdigest(),
        "bytes": len(image),
        "shard": shard,
    }
    return SampleRecord(**fields)


def build(folder: Path, shards: int, per_shard: int, size: int) -> None:
    """A valid corpus of noise PNGs written as a build writes one."""
    # Imported here: verify's worker processes import this script, and ShardWriter pulls in torch.
    from forgeset.manifests.shard_writer import ShardWriter

    rng = np.random.default_rng(0)
    spec = folder / layout.RESOLVED_SPEC_NAME
    folder.mkdir(parents=True, exist_ok=True)
    spec.write_text("name: verify-bench\n")
    states = []
    for number in range(shards):
        split, index = SPLITS[number % len(SPLITS)], number // len(SPLITS)
        writer = ShardWriter(folder, split, index)
        samples, records = [], []
        for item in range(per_shard):
            key = f"s{number:04d}{item:05d}"
            pixels = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
            buffer = io.BytesIO()
            Image.fromarray(pixels).save(buffer, format="PNG", compress_level=1)
            image = buffer.getvalue()
            record = _record(key, split, "fake" if item % 2 else "real", image, size, writer.relative_path)
            records.append(record)
            samples.append({"__key__": key, "png": image, "json": record.member_json(), "cls": record.member_cls()})
        writer.finish(samples, records, [])
        states.append((split, Layout(folder).shard_state(split, index)))
    spec_sha = hashlib.sha256(spec.read_bytes()).hexdigest()
    policy = ImagePolicy(size=size).model_dump(mode="json")
    finalize(folder, "verify-bench", spec_sha, policy, layout.sample_members(["png"], False), states)


def _timed(what: str, run: object, megabytes: float) -> float:
    started = time.perf_counter()
    run()  # type: ignore[operator]
    seconds = time.perf_counter() - started
    rate = megabytes / seconds
    print(json.dumps({"what": what, "seconds": round(seconds, 3), "mb_per_s": round(rate, 1)}))
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shards", type=int, default=16)
    parser.add_argument("--per-shard", type=int, default=128)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--jobs", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--folder", type=Path, default=None)
    args = parser.parse_args()
    folder = args.folder or Path(tempfile.mkdtemp(prefix="forgeset-verify-bench-")) / "out"
    if not Layout(folder).index.exists():
        build(folder, args.shards, args.per_shard, args.size)
    tars = sorted(str(p) for p in folder.glob("*/*.tar"))
    megabytes = sum(Path(t).stat().st_size for t in tars) / 1e6
    print(json.dumps({"folder": str(folder), "shards": len(tars), "shard_mb": round(megabytes, 1)}))
    subprocess.run(["cat", *tars], check=True, stdout=subprocess.DEVNULL)  # warm the page cache
    verify_corpus(folder, jobs=1, hash_only=True)  # and the lazy imports (the probe's sklearn)
    sha = _timed("sha256sum", lambda: subprocess.run(["sha256sum", *tars], check=True, capture_output=True), megabytes)
    hash_rates = {}
    for jobs in args.jobs:
        hash_rates[jobs] = _timed(
            f"verify --hash-only --jobs {jobs}", lambda j=jobs: verify_corpus(folder, jobs=j, hash_only=True), megabytes
        )
        _timed(f"verify --jobs {jobs}", lambda j=jobs: verify_corpus(folder, jobs=j), megabytes)
    best = max(hash_rates.values())
    print(json.dumps({"hash_only_over_sha256sum": round(best / sha, 2), "goal": ">= 0.5"}))


if __name__ == "__main__":
    main()
