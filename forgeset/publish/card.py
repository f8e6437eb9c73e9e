"""The dataset card (README.md) of a published corpus: Hub front matter plus what users must know.

The front matter lists explicit `configs` with `data_files` per split, so the Hub and
`datasets.load_dataset(DIR)` read only the shards (never manifest.parquet or index.json as data),
and one config per size tier (the first N shards of every split, as DRAGON's xs..xl tiers do).
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import yaml

from forgeset.builders.spec import Spec, SpecError, parse_spec
from forgeset.generators.base import stage_class
from forgeset.manifests import layout
from forgeset.manifests.corpus import Corpus, CorpusError

_SIZE_CATEGORIES = [
    (1_000, "n<1K"),
    (10_000, "1K<n<10K"),
    (100_000, "10K<n<100K"),
    (1_000_000, "100K<n<1M"),
    (10_000_000, "1M<n<10M"),
]


def size_category(samples: int) -> str:
    """The Hub's size_categories bucket for a sample count."""
    return next((label for limit, label in _SIZE_CATEGORIES if samples < limit), "n>10M")


def data_files(shards: list[dict[str, Any]], limit: int | None = None) -> list[dict[str, Any]]:
    """`data_files` entries per split: every shard, or the first `limit` shards of each split."""
    by_split: dict[str, list[str]] = {}
    for shard in shards:
        by_split.setdefault(shard["split"], []).append(f"data/{shard['path']}")
    return [{"split": split, "path": paths[:limit] if limit else paths} for split, paths in by_split.items()]


def tier_configs(shards: list[dict[str, Any]], tiers: dict[str, int]) -> list[dict[str, Any]]:
    """One config per tier smaller than the whole corpus (tiers map a name to shards per split)."""
    most = max(Counter(shard["split"] for shard in shards).values(), default=0)
    return [
        {"config_name": name, "data_files": data_files(shards, count)}
        for name, count in sorted(tiers.items(), key=lambda item: item[1])
        if count < most
    ]


def _table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join("" if v is None else str(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def _generator_rows(spec: Spec, index: dict[str, Any]) -> list[list[Any]]:
    counts = index["counts"]["all"]["generator"]
    return [
        [
            f"`{stage.generator_name}`",
            stage_class(stage).kind,
            f"`{stage.model}`",
            stage.revision or "(recorded per sample)",
            stage.license or "unspecified",
            counts.get(stage.generator_name, 0),
        ]
        for stage in spec.stages
    ]


def render_card(corpus: Corpus, repo_id: str, tiers: dict[str, int]) -> str:
    """The README.md text for `corpus`, published as `repo_id`."""
    index = corpus.index.model_dump(mode="json")
    spec = corpus.resolved_spec()
    try:
        typed_spec = parse_spec(spec, str(corpus.layout.resolved_spec))
    except SpecError as err:
        raise CorpusError(str(err)) from None
    configs = [{"config_name": "default", "data_files": data_files(index["shards"]), "default": True}]
    configs += tier_configs(index["shards"], tiers)
    front = {
        "license": spec.get("license", "other"),
        "pretty_name": spec["name"],
        "task_categories": ["image-classification"],
        "size_categories": [size_category(index["samples"])],
        "tags": ["ai-generated-image-detection", "image-forensics", "synthetic-images", "webdataset", "forgeset"],
        "configs": configs,
    }
    policy = index["image_policy"]
    probe, leak = index.get("bias_probe") or {}, index.get("leakage") or {}
    split_rows = [
        [split, t["total"], t["label"].get("real", 0), t["label"].get("fake", 0)]
        for split, t in index["counts"]["splits"].items()
    ]
    lines = [
        "---",
        yaml.safe_dump(front, sort_keys=False).strip(),
        "---",
        "",
        f"# {spec['name']}",
        "",
        spec.get("description") or "A corpus for detecting AI-generated and manipulated images, built with forgeset.",
        "",
        f"{index['samples']} samples in {len(index['shards'])} WebDataset shards. Every sample carries its recipe "
        "(model, revision, scheduler, steps, guidance, seed, prompt) and lineage (`parent_key`, `group`); "
        "splits are drawn per lineage group, so no real parent and its edits straddle two splits.",
        "",
        "## Splits",
        "",
        _table(["split", "samples", "real", "fake"], split_rows),
        "",
        "## Generators and manipulations",
        "",
        _table(["name", "kind", "model", "revision", "license", "samples"], _generator_rows(typed_spec, index)),
        "",
        "## One format and size policy for every class",
        "",
        f"Every image, real or fake, is {policy['size']}x{policy['size']} px ({policy['resize']}, {policy['resample']})"
        f" and stored as {policy['format'].upper()}"
        + (
            f" (zlib level {policy['png_compression']}, lossless)."
            if corpus.policy.lossless
            else f" (quality {policy['jpeg_quality']}, 4:4:4)."
        ),
        "Source EXIF (GPS, serial numbers) is not carried over."
        if not policy.get("per_label")
        else f"**Deliberately biased:** per-label overrides {json.dumps(policy['per_label'])}.",
        "",
        "## Shortcut and leakage checks",
        "",
        f"- Metadata-only probe (width, height, file size, format, quality; 5-fold AUC): **{probe.get('auc')}**; "
        f"per attribute: {json.dumps(probe.get('features', {}))}.",
        f"- Samples whose parent is in another split: {leak.get('parents_across_splits')}; identical images in "
        f"more than one split: {leak.get('hashes_across_splits')}.",
        "",
    ]
    metrics_path = corpus.layout.metrics
    if metrics_path.exists():
        lines += ["## Baseline detectors", "", "```json", metrics_path.read_text().strip(), "```", ""]
    if len(configs) > 1:
        lines += [
            "## Size tiers",
            "",
            "Smaller configs take the first shards of every split: "
            + ", ".join(f"`{c['config_name']}`" for c in configs[1:])
            + ".",
            "",
        ]
    member = layout.image_member(corpus.policy.format)
    first_shard = f"data/{layout.shard_path(layout.SPLITS[0], 0)}"
    lines += [
        "## Loading",
        "",
        "```python",
        "import datasets",
        f'ds = datasets.load_dataset("{repo_id}", split="train")  # or name="xs" for a tier',
        "```",
        "",
        "```python",
        "import webdataset as wds",
        f'url = "https://huggingface.co/datasets/{repo_id}/resolve/main/{first_shard}"',
        f"for sample in wds.WebDataset(url):  # KEY.{member}, KEY.json, KEY.cls (0 real, 1 fake)",
        f'    image, meta, label = sample["{member}"], sample["json"], sample["cls"]',
        "```",
        "",
        "`manifest.parquet` has one row per sample (the same fields as `KEY.json`, with nulls); "
        "`index.json` has the sha256 of every shard, the library versions and the counts.",
        "",
        f"Made with forgeset from `spec.resolved.yaml` (sha256 `{index['spec_sha256']}`).",
        "",
    ]
    return "\n".join(lines)
