"""The dataset card (README.md) of a published corpus: Hub front matter plus what users must know.

The front matter lists explicit `configs` with `data_files` per split, so the Hub and
`datasets.load_dataset(DIR)` read only the shards (never manifest.parquet or index.json as data),
and one config per size tier (the first N shards of every split, as DRAGON's xs..xl tiers do).
`dataset_info` declares the features of every config: `cls` as ClassLabel(real, fake), the image
member(s) and the mask as images, `json` with every field typed (the columns keep the WebDataset
member names, png/jpg, cls and json, which webdataset loaders also use).

Every string that comes from the spec or the corpus is untrusted: in the body it is escaped for
Markdown and HTML (`md_text`, `md_cell`), shown as code only when it is made of plain characters
(`md_code`), and JSON goes into fences it cannot close; the front matter goes through
`yaml.safe_dump` with a plain license id; code snippets quote values with `repr()`.
"""

from __future__ import annotations

import json
import re
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import yaml

from forgeset.builders.spec import Spec, SpecError, parse_spec
from forgeset.core.naming import slug
from forgeset.generators.base import stage_class
from forgeset.manifests import layout
from forgeset.manifests.corpus import REAL_KIND, Corpus, CorpusError
from forgeset.manifests.schema import LABELS, MANIFEST_SCHEMA

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


# What every field of KEY.json holds (the manifest's columns but `shard`): the card's sample structure.
FIELD_DOCS = {
    "key": "the sample's id (also the tar member prefix)",
    "split": ", ".join(layout.ALL_SPLITS),
    "label": "real or fake (KEY.cls: 0 real, 1 fake)",
    "kind": "what made it: real, or the stage type (text2image, inpaint, launder, ...)",
    "group": "lineage group: a real parent and everything made from it share one group and one split",
    "source": "where a real came from (SOURCE:REF)",
    "license": "the real's license, or the generating model's license",
    "caption": "the real's caption, when its source has one",
    "generator": "the generator or manipulation stage that made it",
    "model": "model id (Hub id, builtin:NAME or opencv:NAME)",
    "revision": "the model's resolved commit (or the builtin recipe's hash)",
    "pipeline": "diffusers pipeline class",
    "scheduler": "scheduler name",
    "scheduler_config": "scheduler configuration (JSON)",
    "prompt": "the prompt as drawn",
    "prompt_used": "the prompt as passed to the pipeline",
    "prompt_base": "what the prompt was made from (an expanded prompt's base), else empty",
    "seed": "the per-sample seed",
    "steps": "inference steps",
    "guidance": "classifier-free guidance scale",
    "dtype": "torch dtype of the run",
    "device": "device type of the run",
    "gen_size": "the size the model generated at, before the common resize",
    "diffusers_version": "diffusers version",
    "torch_version": "torch version",
    "parent_key": "the key of the sample it was made from (edits, laundered and degraded copies)",
    "perturbation": "the degradation applied (a degraded copy), else empty",
    "perturb_seeds": "the seeds of the degradation ops",
    "strength": "img2img or inpainting strength",
    "mask_area": "share of the image the mask covers",
    "psnr": "PSNR against the parent",
    "ssim": "SSIM against the parent",
    "quality_scores": "the spec's quality checks' scores of a fake (JSON {metric: score}), else empty",
    "watermark_payload": "hex payload of the watermark embedded in it (also in ops), else empty",
    "watermark_bits": "payload length in bits of that watermark, else empty",
    "regions": "number of regions in KEY.ann.json, empty when the sample has none",
    "width": "stored width in px",
    "height": "stored height in px",
    "format": "stored format (png or jpeg)",
    "quality": "JPEG quality (1 for lossless PNG)",
    "ops": "every operation applied to the pixels, in order (JSON)",
    "sha256": "sha256 of the stored image member",
    "bytes": "size of the stored image member",
}
_FEATURE_TYPES = {"string": "string", "int64": "int64", "double": "float64"}
BUILTIN_PREFIX = "builtin:"
OPENCV_PREFIX = "opencv:"
BUILTIN_LICENSE = "builtin model, random weights"
OPENCV_LICENSE = "OpenCV algorithm (Apache-2.0), no model weights"
LICENSE_SECTION = "licenses"


def card_features(corpus: Corpus) -> Any:
    """The declared `datasets.Features` of the published WebDataset shards (one for every config)."""
    import datasets

    json_fields = {
        field.name: datasets.Value(_FEATURE_TYPES[str(field.type)])
        for field in MANIFEST_SCHEMA
        if field.name != "shard"
    }
    features: dict[str, Any] = {member: datasets.Image() for member in layout.image_members(_formats(corpus))}
    if corpus.localized:
        features[layout.MASK_MEMBER] = datasets.Image()
    if layout.ANN_MEMBER in corpus.index.members:  # optional per sample: `datasets` gives None where absent
        features[layout.ANN_MEMBER] = annotation_feature()
    features[layout.JSON_MEMBER] = json_fields
    features[layout.CLS_MEMBER] = datasets.ClassLabel(names=list(LABELS))
    features["__key__"] = datasets.Value("string")
    features["__url__"] = datasets.Value("string")
    return datasets.Features(features)


def annotation_feature() -> Any:
    """The `datasets` feature of KEY.ann.json (see manifests/annotations.py)."""
    import datasets

    region = {
        "label": datasets.Value("string"),
        "box": datasets.List(datasets.Value("float64"), length=4),
        "box_px": datasets.List(datasets.Value("int64"), length=4),
        "note": datasets.Value("string"),
        "source": datasets.Value("string"),
    }
    size = {"format": datasets.Value("int64"), "width": datasets.Value("int64"), "height": datasets.Value("int64")}
    return {**size, "regions": datasets.List(region)}


def _formats(corpus: Corpus) -> list[str]:
    return sorted({row["format"] for row in corpus.rows})


def _distinct(values: list[Any]) -> list[str]:
    return sorted({str(v) for v in values if v})


def _generator_rows(spec: Spec, corpus: Corpus, counts: dict[str, int]) -> list[list[str]]:
    """name, kind, model, revision (resolved, from the manifest), license (from the model), samples."""
    by_generator: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in corpus.rows:
        if row["generator"]:
            by_generator[row["generator"]].append(row)
    rows = []
    for stage in spec.stages:
        made = by_generator.get(stage.generator_name, [])
        revisions = _distinct([r["revision"] for r in made]) or ([stage.revision] if stage.revision else [])
        # A generator's own outputs record its model's license; an edit (a row with a parent) records the
        # license of the real it edits, which says nothing about the model.
        licenses = _distinct([r["license"] for r in made if not r["parent_key"]])
        licenses = licenses or ([stage.license] if stage.license else [])
        model = str(stage.model or "")
        builtin = model.startswith(BUILTIN_PREFIX)
        default = OPENCV_LICENSE if model.startswith(OPENCV_PREFIX) else "unspecified"
        license_text = ", ".join(md_cell(v) for v in licenses)
        if builtin:  # forgeset's own test models: random weights, no third-party terms
            license_text = f"{license_text} (builtin model, random weights)" if license_text else BUILTIN_LICENSE
        rows.append(
            [
                md_code(stage.generator_name),
                md_cell(stage_class(stage).kind),
                md_code(stage.model),
                ", ".join(md_code(v) for v in revisions) or "unrecorded",
                license_text or default,
                md_cell(counts.get(stage.generator_name, 0)),
            ]
        )
    return rows


def _real_license_rows(corpus: Corpus) -> list[list[str]]:
    """The reals' licenses per source (the part of `source` before the colon), with counts."""
    counts: Counter[tuple[str, str]] = Counter(
        (str(row["source"]).split(":", 1)[0], str(row["license"] or "unspecified"))
        for row in corpus.rows
        if row["kind"] == REAL_KIND and row["source"]
    )
    return [[md_cell(source), md_cell(license), md_cell(n)] for (source, license), n in sorted(counts.items())]


def _fmt(value: Any) -> str:
    """A metric cell: 4 decimals, or a dash when there is no figure."""
    return "-" if value is None else md_cell(f"{value:.4f}" if isinstance(value, float) else value)


def _auc_cell(entry: dict[str, Any]) -> str:
    ci = entry.get("auc_ci")
    interval = f" ({_fmt(ci[0])}-{_fmt(ci[1])})" if isinstance(ci, list) and len(ci) == 2 else ""
    return _fmt(entry.get("auc")) + interval + (" (few)" if entry.get("few") else "")


def _mapping(value: Any, path: Path, field: str) -> dict[str, Any]:
    """`value` when it is a JSON object; else CorpusError naming the file and the field."""
    if not isinstance(value, dict):
        raise CorpusError(f"{path}: field {field}: not a mapping (got {type(value).__name__})")
    return value


def _metrics_tables(path: Path) -> list[str]:
    """The validation metrics as summary tables: per detector and split, and per generator.

    A malformed shape (a detector, split or generator entry that is not a mapping) is a CorpusError
    naming the file and field, never a traceback or a silently missing row.
    """
    try:
        metrics = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise CorpusError(f"{path}: not readable JSON ({type(err).__name__})") from None
    detectors = _mapping(metrics.get("detectors") if isinstance(metrics, dict) else None, path, "detectors")
    overall, per_generator = [], []
    for name, detector_entry in sorted(detectors.items()):
        entry = _mapping(detector_entry, path, f"detectors.{name}")
        for split in (layout.SPLITS[-1], layout.HOLDOUT_SPLIT):
            if entry.get(split) is not None:
                figures = _mapping(entry[split], path, f"detectors.{name}.{split}")
                overall.append(
                    [
                        md_cell(name),
                        md_cell(split),
                        _fmt(figures.get("n_real")),
                        _fmt(figures.get("n_fake")),
                        _auc_cell(figures),
                        _fmt(figures.get("ap")),
                        _fmt(figures.get("accuracy")),
                    ]
                )
        by_generator = entry.get("per_generator")
        by_generator = {} if by_generator is None else _mapping(by_generator, path, f"detectors.{name}.per_generator")
        for generator, generator_figures in sorted(by_generator.items()):
            figures = _mapping(generator_figures, path, f"detectors.{name}.per_generator.{generator}")
            per_generator.append(
                [
                    md_cell(generator),
                    md_cell(name),
                    _fmt(figures.get("n_real")),
                    _fmt(figures.get("n_fake")),
                    _auc_cell(figures),
                    _fmt(figures.get("accuracy")),
                ]
            )
    lines = [
        f"Detectors trained on train and scored on test and {layout.HOLDOUT_SPLIT} (AUC with its bootstrap "
        "95 % interval; accuracy at 0.5; `few`: fewer than 30 samples of a class). The full figures are in "
        "`validation/metrics.json` of the corpus.",
        "",
        _table(["detector", "split", "real", "fake", "AUC", "AP", "accuracy"], overall),
        "",
    ]
    if per_generator:
        lines += [
            "Per generator on test (its fakes against all test reals):",
            "",
            _table(["generator", "detector", "real", "fake", "AUC", "accuracy"], per_generator),
            "",
        ]
    return lines


def _degraded_lines(corpus: Corpus) -> list[str]:
    """How many samples are degraded copies (perturbation set), per degradation and label."""
    degraded = [row for row in corpus.rows if row["perturbation"]]
    total = len(corpus.rows)
    if not degraded:
        return ["No degraded copies: every sample is as its generator or source made it.", ""]
    share = len(degraded) / total if total else 0.0
    counts = Counter((row["perturbation"], row["label"]) for row in degraded)
    rows = [[md_cell(op), md_cell(label), md_cell(n)] for (op, label), n in sorted(counts.items())]
    return [
        f"{md_cell(len(degraded))} of {md_cell(total)} samples ({share:.1%}) are degraded copies of another sample "
        "(`parent_key` names it; `perturbation` and `ops` say what was done). They share the parent's lineage "
        "group and split, and carry the parent's label.",
        "",
        _table(["degradation", "label", "samples"], rows),
        "",
    ]


def _split_lines(spec: Spec, index: dict[str, Any]) -> list[str]:
    fractions = ", ".join(f"{md_cell(name)} {fraction:g}" for name, fraction in spec.splits.fractions())
    holdout = spec.splits.holdout_generators
    lines = [
        "Splits are assigned per lineage group (a real and every sample made from it, or a caption-paired fake "
        "and its real), so no parent and its edits straddle two splits. They are stratified, a pure function of "
        f"the spec (seed {md_cell(spec.seed)}): the groups of each stratum (the real source or unpaired generator "
        "of the group's root) are ordered by size and a seeded draw and dealt so that every split gets its "
        f"fraction ({fractions}) of each stratum, which keeps each split's real and fake counts within one "
        "lineage group of the corpus shares. Each split is then cut into at least `shards.min_per_split` "
        f"({md_cell(spec.shards.min_per_split)}) shards of nearly equal size (fewer only when it has fewer groups), "
        "its groups in a seeded order so that shards mix classes.",
    ]
    if holdout:
        lines.append(
            f"`{layout.HOLDOUT_SPLIT}` holds every sample of the held-out generators "
            + ", ".join(md_code(name) for name in holdout)
            + f" and nothing else: no reals of its own; evaluate it against the `{layout.SPLITS[-1]}` reals."
        )
    return [*lines, ""]


def _limitations(index: dict[str, Any], spec: Spec, corpus: Corpus) -> list[str]:
    probe = index.get("bias_probe") or {}
    auc = probe.get("auc")
    labels = Counter(row["label"] for row in corpus.rows)
    lines = [
        f"- Class balance: {md_cell(labels.get('real', 0))} real and {md_cell(labels.get('fake', 0))} fake samples.",
        f"- Metadata-only bias probe AUC {md_cell(auc)}"
        + (f" (leading attribute {md_code(probe['leading'])})" if probe.get("leading") else "")
        + ": 0.5 means width, height, file size, format and quality do not give the label away; higher values "
        "mean a detector can score without looking at the pixels.",
        "- Fakes come only from the generators listed above, at their recorded settings; detectors trained on "
        f"them are not expected to generalise to other models (see the {layout.HOLDOUT_SPLIT} figures).",
    ]
    if any(str(stage.model or "").startswith(BUILTIN_PREFIX) for stage in spec.stages):
        lines.append(
            "- Builtin models have random weights: their fakes are not realistic and serve tests and pipelines only."
        )
    return lines


def render_card(corpus: Corpus, repo_id: str, tiers: dict[str, int]) -> str:
    """The README.md text for `corpus`, published as `repo_id` (a valid Hub dataset id, else ValueError)."""
    from datasets.info import DatasetInfo, DatasetInfosDict

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
    license_value = license_id(typed_spec.license)
    front: dict[str, Any] = {"license": license_value}
    if license_value == "other":
        front["license_name"] = slug(str(typed_spec.license)) if typed_spec.license != "other" else "mixed"
        front["license_link"] = f"https://huggingface.co/datasets/{repo_id}/blob/main/README.md#{LICENSE_SECTION}"
    front |= {
        "pretty_name": typed_spec.name,
        "task_categories": ["image-classification"],
        "size_categories": [size_category(index["samples"])],
        "tags": ["ai-generated-image-detection", "image-forensics", "synthetic-images", "webdataset", "forgeset"],
        "configs": configs,
    }
    features = card_features(corpus)
    DatasetInfosDict({c["config_name"]: DatasetInfo(features=features) for c in configs}).to_dataset_card_data(front)
    policy = index["image_policy"]
    leak = index.get("leakage") or {}
    split_rows = [
        [md_cell(split), md_cell(t["total"]), md_cell(t["label"].get("real", 0)), md_cell(t["label"].get("fake", 0))]
        for split, t in index["counts"]["splits"].items()
    ]
    description = (
        md_text(typed_spec.description)
        if typed_spec.description
        else "A corpus for detecting AI-generated and manipulated images, built with forgeset."
    )
    member = layout.image_member(corpus.policy.format)
    members = [
        [md_code(f"KEY.{m}"), "the image, stored once as the policy says (never re-encoded on export)"]
        for m in layout.image_members(_formats(corpus))
    ]
    if corpus.localized:
        members.append([md_code(f"KEY.{layout.MASK_MEMBER}"), "the edit mask (255 edited, 0 untouched)"])
    if layout.ANN_MEMBER in corpus.index.members:
        annotated = sum(1 for row in corpus.rows if row["regions"])
        members.append(
            [
                md_code(f"KEY.{layout.ANN_MEMBER}"),
                f"optional ({annotated} of {len(corpus.rows)} samples have one): regions, each a `label`, "
                "a relative `box` [x, y, w, h], `box_px` [x0, y0, x1, y1] "
                "(end-exclusive), a free-text `note` and its `source` (`mask`: a box around one connected part of "
                "the mask, made by the build; `human`: drawn by a curator in FiftyOne)",
            ]
        )
    members += [
        [md_code(f"KEY.{layout.JSON_MEMBER}"), "every field below; empty string or -1 where a field does not apply"],
        [md_code(f"KEY.{layout.CLS_MEMBER}"), "0 real, 1 fake (the `cls` column, a ClassLabel)"],
    ]
    field_rows = [
        [md_code(field.name), md_cell(_FEATURE_TYPES[str(field.type)]), md_cell(FIELD_DOCS.get(field.name, ""))]
        for field in MANIFEST_SCHEMA
        if field.name != "shard"
    ]
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
        "recipe (model, revision, scheduler, steps, guidance, seed, prompt) and lineage (`parent_key`, `group`).",
        "",
        "## Splits",
        "",
        _table(["split", "samples", "real", "fake"], split_rows),
        "",
        "## How the splits are made",
        "",
        *_split_lines(typed_spec, index),
        "## Structure of a sample",
        "",
        _table(["member", "content"], members),
        "",
        _table(["field", "type", "meaning"], field_rows),
        "",
        "## Generators and manipulations",
        "",
        _table(
            ["name", "kind", "model", "revision", "license", "samples"],
            _generator_rows(typed_spec, corpus, index["counts"]["all"]["generator"]),
        ),
        "",
        "## Degraded copies",
        "",
        *_degraded_lines(corpus),
        "## Licenses",
        "",
        f"The dataset's license: {md_cell(typed_spec.license)}. Reals keep their source's license:",
        "",
        _table(["source", "license", "samples"], _real_license_rows(corpus)),
        "",
        "Generated fakes carry the license of the model that made them (the table above); edited and laundered "
        "samples also keep the license of the real they were made from (the `license` field of each sample).",
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
        "## Limitations and known biases",
        "",
        *_limitations(index, typed_spec, corpus),
        f"- Samples whose parent is in another split: {md_cell(leak.get('parents_across_splits'))}; identical images "
        f"in more than one split: {md_cell(leak.get('hashes_across_splits'))}.",
        "",
    ]
    metrics_path = corpus.layout.metrics
    if metrics_path.exists():
        lines += ["## Baseline detectors", "", *_metrics_tables(metrics_path)]
    if len(configs) > 1:
        lines += [
            "## Size tiers",
            "",
            "Smaller configs take the first shards of every split: "
            + ", ".join(md_code(c["config_name"]) for c in configs[1:])
            + ".",
            "",
        ]
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
        "`index.json` has the sha256 of every shard, the library versions and the counts; `croissant.json` "
        "describes the files and the manifest's records in Croissant (mlcroissant).",
        "",
        "## Citation",
        "",
        "```bibtex",
        f"@misc{{{typed_spec.name},",
        f"  title = {{{typed_spec.name}}},",
        f"  howpublished = {{https://huggingface.co/datasets/{repo_id}}},",
        f"  note = {{Built with forgeset from spec.resolved.yaml, sha256 {index['spec_sha256']}}}",
        "}",
        "```",
        "",
        f"Made with forgeset from `spec.resolved.yaml` (sha256 {md_code(index['spec_sha256'])}).",
        "",
    ]
    return "\n".join(lines)
