"""The per-sample record: one definition gives the manifest row, KEY.json and KEY.cls.

manifest.parquet keeps real nulls under an explicit Arrow schema. KEY.json cannot: HF `datasets`
infers a WebDataset's features from the first five samples of a split (and an imagefolder's from
each split's metadata file), and a field that is null there but a string elsewhere fails to load.
So KEY.json holds no nulls: strings that do not apply are "", numbers that do not apply are -1
(never a valid value for those fields).
"""

from __future__ import annotations

import builtins
import json
from dataclasses import Field, asdict, dataclass, fields
from typing import Any

import pyarrow as pa

FORMAT_VERSION = 2
LABELS = {"real": 0, "fake": 1}


@dataclass(frozen=True)
class StageRecipe:
    """What a model-holding stage used, shared by every sample it makes; recorded in each row."""

    model: str | None = None
    revision: str | None = None
    pipeline: str | None = None
    scheduler: str | None = None
    scheduler_config: str | None = None
    license: str | None = None
    steps: int | None = None
    guidance: float | None = None
    dtype: str | None = None
    device: str | None = None
    gen_size: int | None = None
    diffusers_version: str | None = None
    torch_version: str | None = None


@dataclass
class SampleRecord:
    """Everything known about one sample: identity, label, recipe, lineage and image facts."""

    key: str
    split: str
    label: str
    kind: str
    group: str
    source: str | None
    license: str | None
    caption: str | None
    generator: str | None
    model: str | None
    revision: str | None
    pipeline: str | None
    scheduler: str | None
    scheduler_config: str | None
    prompt: str | None
    prompt_used: str | None
    prompt_base: str | None  # what `prompt` was made from (an expanded prompt's base)
    seed: int | None
    steps: int | None
    guidance: float | None
    dtype: str | None
    device: str | None
    gen_size: int | None
    diffusers_version: str | None
    torch_version: str | None
    parent_key: str | None
    perturbation: str | None
    perturb_seeds: str | None
    strength: float | None
    mask_area: float | None
    psnr: float | None
    ssim: float | None
    quality_scores: str | None  # JSON {metric: score} of the spec's quality checks (fakes only)
    watermark_payload: str | None  # hex payload of a `watermark` op (also in `ops`)
    watermark_bits: int | None
    regions: int | None  # regions in KEY.ann.json; null when the sample has none
    width: int
    height: int
    format: str
    quality: int
    ops: str
    sha256: str
    bytes: int
    shard: str

    def member_json(self) -> builtins.bytes:
        """KEY.json: every field but `shard`, typed sentinels instead of nulls (see module doc)."""
        return json.dumps(member_fields(asdict(self)), sort_keys=True, ensure_ascii=False).encode("utf-8")

    def member_cls(self) -> builtins.bytes:
        """KEY.cls: 0 for real, 1 for fake."""
        return str(LABELS[self.label]).encode()


def _annotation(field: Field[Any]) -> str:
    """A field's annotation as written: a string, since this module postpones annotations."""
    if not isinstance(field.type, str):
        raise TypeError(f"field {field.name!r} has a non-string annotation {field.type!r}")
    return field.type


_ARROW_TYPES = {
    "int | None": pa.int64(),
    "int": pa.int64(),
    "float | None": pa.float64(),
    "str | None": pa.string(),
    "str": pa.string(),
}
MANIFEST_SCHEMA = pa.schema(
    [pa.field(f.name, _ARROW_TYPES[_annotation(f)], nullable="None" in _annotation(f)) for f in fields(SampleRecord)]
)
_SENTINELS = {
    f.name: ("" if "str" in _annotation(f) else -1.0 if "float" in _annotation(f) else -1)
    for f in fields(SampleRecord)
    if "None" in _annotation(f)
}


def member_fields(row: dict[str, Any]) -> dict[str, Any]:
    """A manifest row as KEY.json holds it: no `shard`, typed sentinels instead of nulls."""
    return {name: (_SENTINELS[name] if value is None else value) for name, value in row.items() if name != "shard"}


@dataclass
class RejectRecord:
    """An input that was refused, with why; nothing is dropped silently."""

    key: str
    source: str
    ref: str
    reason: str
    detail: str
    shard: str
    scores: str = ""  # JSON {metric: score} when a quality check rejected it


REJECTS_SCHEMA = pa.schema([pa.field(f.name, pa.string(), nullable=False) for f in fields(RejectRecord)])


def records_table(records: list[Any], schema: pa.Schema) -> pa.Table:
    """A typed table from dataclass records (an empty list gives an empty table with the schema)."""
    return pa.Table.from_pylist([asdict(r) for r in records], schema=schema)
