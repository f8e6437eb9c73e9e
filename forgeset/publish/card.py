"""The dataset card (README.md) of a published corpus: Hub front matter plus what users must know.

The front matter lists explicit `configs` with `data_files` per split, so the Hub and
`datasets.load_dataset(DIR)` read only the shards (never manifest.parquet or index.json as data),
and one config per size tier (the first N shards of every split, as DRAGON's xs..xl tiers do).

Every string that comes from the spec or the corpus is untrusted: in the body it is escaped for
Markdown and HTML (`md_text`, `md_cell`), shown as code only when it is made of plain characters
(`md_code`), and JSON goes into fences it cannot close; the front matter goes through
`yaml.safe_dump` with a plain license id; code snippets quote values with `repr()`.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path
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


# Characters that open Markdown constructs (emphasis, code, links, images, tables, math, escapes) or HTML.
_HTML_ENTITIES = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}
_MD_SPECIALS = "\\`*_[](){}#|!~$"
_ESCAPES = str.maketrans({**_HTML_ENTITIES, **{c: "\\" + c for c in _MD_SPECIALS}})
# At the start of a line of running text: list items, setext underlines and ordered-list numbers.
_LINE_START = re.compile(r"^([ \t]*)([-+=])", re.MULTILINE)
_ORDERED_ITEM = re.compile(r"^([ \t]*\d+)([.)])", re.MULTILINE)
# A value shown as `code` only when it is made of these (no backtick, pipe or space to break out).
_CODE_SAFE = re.compile(r"[A-Za-z0-9._:/@+=-]+")
# In JSON strings: no backtick (ends code) and no HTML.
_JSON_ESCAPES = str.maketrans({"`": "\\u0060", "<": "\\u003c", ">": "\\u003e", "&": "\\u0026"})
# The front matter's license must be a plain Hub license id.
_LICENSE_ID = re.compile(r"[a-z0-9][a-z0-9.\-]*")


def md_text(value: Any) -> str:
    """`value` as Markdown running text that renders literally: no HTML, links, images, code or emphasis."""
    text = str(value).replace("\r\n", "\n").replace("\r", "\n").translate(_ESCAPES)
    return _ORDERED_ITEM.sub(r"\1\\\2", _LINE_START.sub(r"\1\\\2", text))


def md_cell(value: Any) -> str:
    """`value` inside one line (a table cell, a heading, a sentence): escaped, newlines as spaces, None empty."""
    if value is None:
        return ""
    return " ".join(str(value).splitlines()).translate(_ESCAPES)


def md_code(value: Any) -> str:
    """`value` as inline code when it is plain (names, model ids, hashes); otherwise as an escaped cell."""
    text = str(value)
    return f"`{text}`" if _CODE_SAFE.fullmatch(text) else md_cell(text)


def json_text(data: Any, indent: int | None = None) -> str:
    """JSON that can close neither a code span nor a fence and holds no raw HTML.

    ASCII only; backtick, `<`, `>` and `&` (which valid JSON holds only inside strings) become \\uXXXX.
    """
    return json.dumps(data, indent=indent, ensure_ascii=True).translate(_JSON_ESCAPES)


def license_id(value: Any) -> str:
    """The front matter's license: `value` when it is a plain license id, else `other`."""
    return value if isinstance(value, str) and _LICENSE_ID.fullmatch(value) else "other"


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


def _table(header: list[str], rows: list[list[str]]) -> str:
    """A Markdown table; `rows` hold cells already escaped (md_cell, md_code)."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _generator_rows(spec: Spec, index: dict[str, Any]) -> list[list[str]]:
    counts = index["counts"]["all"]["generator"]
    return [
        [
            md_code(stage.generator_name),
            md_cell(stage_class(stage).kind),
            md_code(stage.model),
            md_cell(stage.revision) if stage.revision else "(recorded per sample)",
            md_cell(stage.license) if stage.license else "unspecified",
            md_cell(counts.get(stage.generator_name, 0)),
        ]
        for stage in spec.stages
    ]


def _metrics_block(path: Path) -> list[str]:
    """The validation metrics as a JSON fence that no string inside can close."""
    try:
        metrics = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise CorpusError(f"{path}: not readable JSON ({type(err).__name__})") from None
    return ["```json", json_text(metrics, indent=2), "```"]


def render_card(corpus: Corpus, repo_id: str, tiers: dict[str, int]) -> str:
    """The README.md text for `corpus`, published as `repo_id` (a valid Hub dataset id, else ValueError)."""
    from forgeset.publish.hub import validate_repo_id  # hub imports this module: imported here, not at the top

    repo_id = validate_repo_id(repo_id)
    index = corpus.index.model_dump(mode="json")
    spec = corpus.resolved_spec()
    try:
        typed_spec = parse_spec(spec, str(corpus.layout.resolved_spec))
    except SpecError as err:
        raise CorpusError(str(err)) from None
    configs = [{"config_name": "default", "data_files": data_files(index["shards"]), "default": True}]
    configs += tier_configs(index["shards"], tiers)
    front = {
        "license": license_id(typed_spec.license),
        "pretty_name": typed_spec.name,
        "task_categories": ["image-classification"],
        "size_categories": [size_category(index["samples"])],
        "tags": ["ai-generated-image-detection", "image-forensics", "synthetic-images", "webdataset", "forgeset"],
        "configs": configs,
    }
    policy = index["image_policy"]
    probe, leak = index.get("bias_probe") or {}, index.get("leakage") or {}
    split_rows = [
        [md_cell(split), md_cell(t["total"]), md_cell(t["label"].get("real", 0)), md_cell(t["label"].get("fake", 0))]
        for split, t in index["counts"]["splits"].items()
    ]
    description = (
        md_text(typed_spec.description)
        if typed_spec.description
        else "A corpus for detecting AI-generated and manipulated images, built with forgeset."
    )
    lines = [
        "---",
        yaml.safe_dump(front, sort_keys=False).strip(),
        "---",
        "",
        f"# {md_cell(typed_spec.name)}",
        "",
        description,
        "",
        f"{md_cell(index['samples'])} samples in {len(index['shards'])} WebDataset shards. Every sample carries its "
        "recipe (model, revision, scheduler, steps, guidance, seed, prompt) and lineage (`parent_key`, `group`); "
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
        f"Every image, real or fake, is {md_cell(policy['size'])}x{md_cell(policy['size'])} px "
        f"({md_cell(policy['resize'])}, {md_cell(policy['resample'])})"
        f" and stored as {md_cell(str(policy['format']).upper())}"
        + (
            f" (zlib level {md_cell(policy['png_compression'])}, lossless)."
            if corpus.policy.lossless
            else f" (quality {md_cell(policy['jpeg_quality'])}, 4:4:4)."
        ),
        "Source EXIF (GPS, serial numbers) is not carried over."
        if not policy.get("per_label")
        else f"**Deliberately biased:** per-label overrides `{json_text(policy['per_label'])}`.",
        "",
        "## Shortcut and leakage checks",
        "",
        "- Metadata-only probe (width, height, file size, format, quality; 5-fold AUC): "
        f"**{md_cell(probe.get('auc'))}**; per attribute: `{json_text(probe.get('features', {}))}`.",
        f"- Samples whose parent is in another split: {md_cell(leak.get('parents_across_splits'))}; identical images "
        f"in more than one split: {md_cell(leak.get('hashes_across_splits'))}.",
        "",
    ]
    metrics_path = corpus.layout.metrics
    if metrics_path.exists():
        lines += ["## Baseline detectors", "", *_metrics_block(metrics_path), ""]
    if len(configs) > 1:
        lines += [
            "## Size tiers",
            "",
            "Smaller configs take the first shards of every split: "
            + ", ".join(md_code(c["config_name"]) for c in configs[1:])
            + ".",
            "",
        ]
    member = layout.image_member(corpus.policy.format)
    first_shard = f"data/{layout.shard_path(layout.SPLITS[0], 0)}"
    url = f"https://huggingface.co/datasets/{repo_id}/resolve/main/{first_shard}"
    # Python snippets: every value is a repr() literal, so no string can end the literal or the statement.
    lines += [
        "## Loading",
        "",
        "```python",
        "import datasets",
        f"ds = datasets.load_dataset({repo_id!r}, split={layout.SPLITS[0]!r})  # or name='xs' for a tier",
        "```",
        "",
        "```python",
        "import webdataset as wds",
        f"url = {url!r}",
        f"for sample in wds.WebDataset(url):  # KEY.{member}, KEY.json, KEY.cls (0 real, 1 fake)",
        f"    image, meta, label = sample[{member!r}], sample['json'], sample['cls']",
        "```",
        "",
        "`manifest.parquet` has one row per sample (the same fields as `KEY.json`, with nulls); "
        "`index.json` has the sha256 of every shard, the library versions and the counts.",
        "",
        f"Made with forgeset from `spec.resolved.yaml` (sha256 {md_code(index['spec_sha256'])}).",
        "",
    ]
    return "\n".join(lines)
