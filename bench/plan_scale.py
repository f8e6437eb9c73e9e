"""Benchmark: planning a 10,000,000-sample corpus in the driver (time and peak memory).

The spec: `--generators` text2image entries whose counts sum to `--samples`, a `mode: new`
perturbation stage on a share of them, and a real folder source of `--real-files` tiny files
(listed into the parquet source index under a temporary build state, then planned again to show
the reuse). Nothing is generated: only `plan_build` and the materialization of single shards run.
Prints one JSON line: planning wall time, peak RSS of this process (ru_maxrss) before and after
planning, the plan's size, and the time to materialize a shard.

    python bench/plan_scale.py [--samples 10000000] [--real-files 100000] [--generators 4]

Target (issue 11): under 60 s and under 1 GB of driver memory at 10M samples.
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time
from pathlib import Path

from forgeset.builders.planner import plan_build
from forgeset.builders.spec import parse_spec


def _rss_mb() -> float:
    """Peak resident set size of this process so far, in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _spec(samples: int, generators: int, real_folder: Path | None) -> dict:
    counts = [samples // generators + (1 if i < samples % generators else 0) for i in range(generators)]
    spec: dict = {
        "name": "plan-scale",
        "seed": 3,
        "image": {"size": 64},
        "shards": {"size": 256},
        "prompts": {"type": "templates", "classes": ["cat", "dog", "car", "boat", "tree"]},
        "generate": [
            {"type": "text2image", "name": f"gen-{i}", "model": "builtin:tiny-sd", "count": count, "steps": 1}
            for i, count in enumerate(counts)
        ],
        "perturb": [{"name": "jpeg", "ops": [{"type": "recompress"}], "mode": "new", "fraction": 0.1}],
    }
    if real_folder is not None:
        spec["real"] = [{"type": "folder", "name": "photos", "path": str(real_folder)}]
    return spec


def _make_files(folder: Path, count: int) -> None:
    """`count` tiny files in 100 subfolders (the folder source lists recursively)."""
    for index in range(count):
        sub = folder / f"{index % 100:02d}"
        if index < 100:
            sub.mkdir(parents=True)
        (sub / f"{index:08d}.png").write_bytes(b"x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=10_000_000, help="generated samples in all")
    parser.add_argument("--real-files", type=int, default=100_000, help="files of the real folder source (0: none)")
    parser.add_argument("--generators", type=int, default=4)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="plan-scale-") as scratch:
        root = Path(scratch)
        folder = root / "photos" if args.real_files else None
        started = time.perf_counter()
        if folder is not None:
            _make_files(folder, args.real_files)
        files_s = time.perf_counter() - started
        spec = parse_spec(_spec(args.samples, args.generators, folder))
        state = root / "out" / ".state"
        rss_before = _rss_mb()

        started = time.perf_counter()
        plan = plan_build(spec, root, state)
        plan_s = time.perf_counter() - started
        rss_plan = _rss_mb()

        started = time.perf_counter()
        again = plan_build(spec, root, state)  # a resume: the source index is reused, not listed
        replan_s = time.perf_counter() - started
        assert again.shards == plan.shards

        timings = []
        for ref in (plan.shards[0], plan.shards[len(plan.shards) // 2], plan.shards[-1]):
            started = time.perf_counter()
            shard = plan.shard(ref)
            timings.append(time.perf_counter() - started)
            assert len(shard.jobs) == ref.count
        print(
            json.dumps(
                {
                    "samples": plan.total_jobs,
                    "generated": args.samples,
                    "real_files": args.real_files,
                    "shards": len(plan.shards),
                    "counts": plan.counts,
                    "make_files_s": round(files_s, 1),
                    "plan_s": round(plan_s, 2),
                    "replan_with_index_s": round(replan_s, 2),
                    "shard_materialize_s": [round(t, 3) for t in timings],
                    "rss_before_plan_mb": round(rss_before),
                    "peak_rss_mb": round(rss_plan),
                    "peak_rss_after_replan_and_shards_mb": round(_rss_mb()),
                }
            )
        )


if __name__ == "__main__":
    main()
