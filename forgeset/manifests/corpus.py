"""`Corpus.open(OUT)`: the one reader of a built corpus, which validates what it reads.

index.json and manifest.parquet are read once and checked before any command acts on them: the
index's shape and image policy, shard paths that are plain `SPLIT/NNNNN.tar` names of known
splits, and a manifest whose keys, splits, generators, sources and parents are plain names and
whose shards are the index's. Every file of a corpus is untrusted input: a doctored corpus is
refused with one error naming the file and the field, before anything is written anywhere.
Samples are streamed shard by shard (`iter_samples`), so no command holds the whole corpus.
"""

from __future__ import annotations

import json
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from forgeset.core.naming import NAME_MAX_LENGTH, NAME_PATTERN
from forgeset.imaging.policy import ImagePolicy
from forgeset.manifests import layout
from forgeset.manifests.index import SELF_HASH_FIELD, VOUCHED_FILES, index_content_sha256
from forgeset.manifests.layout import CorpusError
from forgeset.manifests.schema import FORMAT_VERSION, LABELS, MANIFEST_SCHEMA, REJECTS_SCHEMA, member_fields
from forgeset.manifests.shard_reader import read_members
from forgeset.manifests.shard_writer import file_sha256

_SHA256 = r"^[0-9a-f]{64}$"
# The kind of a sample that no generator made (a real input, or a degraded copy of one).
REAL_KIND = "real"


class IndexShard(BaseModel):
    """One shard as index.json lists it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: str
    split: str
    count: int = Field(ge=0)
    bytes: int = Field(ge=0)
    sha256: str = Field(pattern=_SHA256)

    @model_validator(mode="after")
    def _plain_path(self) -> IndexShard:
        parsed = layout.parse_shard_path(self.path)
        if parsed is None or parsed[0] != self.split:
            raise ValueError(f"shard path {self.path!r} is not SPLIT/NNNNN.tar of split {self.split!r}")
        return self


class FileEntry(BaseModel):
    """A file index.json vouches for: its size and sha256."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    bytes: int = Field(ge=0)
    sha256: str = Field(pattern=_SHA256)


class IndexFile(BaseModel):
    """index.json: what a finished build vouches for."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    format_version: Literal[FORMAT_VERSION]  # type: ignore[valid-type]  # pydantic takes the constant
    name: str = Field(pattern=NAME_PATTERN, max_length=NAME_MAX_LENGTH)
    spec_sha256: str = Field(pattern=_SHA256)
    image_policy: ImagePolicy
    members: list[str]
    libraries: dict[str, str] = Field(default_factory=dict)
    samples: int = Field(ge=0)
    rejects: int = Field(ge=0)
    counts: dict[str, Any]
    leakage: dict[str, Any] | None = None
    bias_probe: dict[str, Any] | None = None
    shards: list[IndexShard]
    files: dict[str, FileEntry]
    derived_from: dict[str, Any] | None = None
    index_sha256: str = Field(pattern=_SHA256)

    @model_validator(mode="after")
    def _known_members(self) -> IndexFile:
        if sorted(self.files) != sorted(VOUCHED_FILES):
            raise ValueError(f"files must list exactly {sorted(VOUCHED_FILES)}")
        allowed = set(layout.sample_members(list(layout.IMAGE_MEMBERS), localized=True))
        unknown = sorted(set(self.members) - allowed)
        if unknown:
            raise ValueError(f"members {unknown} are not sample members")
        paths = [shard.path for shard in self.shards]
        if len(paths) != len(set(paths)):
            raise ValueError("a shard is listed twice")
        return self


@dataclass(frozen=True)
class CorpusSample:
    """One sample read from a shard: its members (extension -> bytes) and its manifest row."""

    key: str
    split: str
    shard: str
    members: dict[str, bytes]
    row: dict[str, Any]

    @property
    def image_member(self) -> str:
        """The extension of its image member (png or jpg)."""
        return next(m for m in self.members if layout.is_image_member(m))

    @property
    def image(self) -> bytes:
        """The encoded image bytes."""
        return self.members[self.image_member]

    @property
    def mask(self) -> bytes | None:
        """The encoded mask, if the corpus is localized."""
        return self.members.get(layout.MASK_MEMBER)

    @property
    def member_row(self) -> dict[str, Any]:
        """The row as KEY.json holds it (typed sentinels instead of nulls, no `shard`)."""
        return member_fields(self.row)


def _first_bad(column: pa.ChunkedArray, valid: pa.ChunkedArray) -> Any:
    """The first value of `column` where `valid` is false, or None when all are valid."""
    bad = pc.invert(pc.fill_null(valid, False))
    if not pc.any(bad).as_py():
        return None
    return column.filter(bad)[0].as_py()


class Corpus:
    """A validated, finished corpus. Open it with `Corpus.open(OUT)`."""

    path_inside = staticmethod(layout.path_inside)

    def __init__(self, root: Path, index: IndexFile, table: pa.Table) -> None:
        self.root = root
        self.layout = layout.Layout(root)
        self.index = index
        self.table = table

    @classmethod
    def open(cls, root: Path) -> Corpus:
        """Read and validate index.json and manifest.parquet of `root`; raise CorpusError if anything is off."""
        paths = layout.Layout(root)
        if not root.is_dir():
            raise CorpusError(f"{root} is not a folder")
        if not paths.index.is_file():
            if paths.spec_hash.is_file():
                raise CorpusError(f"{root}: not a finished corpus (the build did not finish: resume it)")
            raise CorpusError(f"{root}: not a finished corpus (no {layout.INDEX_NAME}: not a forgeset build)")
        index = cls._read_index(paths.index)
        corpus = cls(root, index, pa.table({}))
        corpus.table = cls._read_manifest(corpus.vouched(layout.MANIFEST_NAME), index)
        return corpus

    @staticmethod
    def _read_index(path: Path) -> IndexFile:
        try:
            data = json.loads(path.read_bytes())
        except (OSError, ValueError, RecursionError) as err:
            raise CorpusError(f"{path}: not readable JSON ({type(err).__name__}: {err})") from None
        try:
            index = IndexFile.model_validate(data)
        except ValidationError as err:
            first = err.errors(include_url=False)[0]
            field = ".".join(str(part) for part in first["loc"]) or "(top level)"
            raise CorpusError(f"{path}: field {field}: {first['msg']}") from None
        if index_content_sha256(data) != data[SELF_HASH_FIELD]:
            raise CorpusError(f"{path}: field {SELF_HASH_FIELD}: the content does not match its hash (edited)")
        return index

    @staticmethod
    def _read_manifest(path: Path, index: IndexFile) -> pa.Table:
        if not path.is_file():
            raise CorpusError(f"{path} is missing")
        try:
            table = pq.read_table(path)
        except (OSError, pa.ArrowException) as err:
            raise CorpusError(f"{path}: not a readable parquet file ({err})") from None
        for field in MANIFEST_SCHEMA:
            if field.name not in table.column_names:
                raise CorpusError(f"{path}: column {field.name} is missing")
            if table.schema.field(field.name).type != field.type:
                raise CorpusError(
                    f"{path}: column {field.name} is {table.schema.field(field.name).type}, expected {field.type}"
                )
        table = table.select(MANIFEST_SCHEMA.names)
        name = f"^[a-z0-9][a-z0-9-]{{0,{NAME_MAX_LENGTH - 1}}}$"
        listed = pa.array([shard.path for shard in index.shards], pa.string())
        checks: list[tuple[str, pa.ChunkedArray, str]] = [
            ("key", pc.match_substring_regex(table["key"], name), "is not a plain name"),
            ("split", pc.is_in(table["split"], pa.array(layout.ALL_SPLITS)), "is not a known split"),
            ("label", pc.is_in(table["label"], pa.array(list(LABELS))), "is not a label"),
            ("kind", pc.match_substring_regex(table["kind"], name), "is not a plain name"),
            ("shard", pc.is_in(table["shard"], listed), "is not a shard listed in index.json"),
            ("format", pc.is_in(table["format"], pa.array(list(layout.IMAGE_MEMBERS))), "is not an image format"),
        ]
        for column in ("generator", "parent_key", "group"):
            checks.append((column, pc.match_substring_regex(table[column], name), "is not a plain name"))
        source_name = pc.match_substring_regex(table["source"], f"^[a-z0-9][a-z0-9-]{{0,{NAME_MAX_LENGTH - 1}}}:")
        checks.append(("source", source_name, "does not start with a plain source name"))
        for column, valid, problem in checks:
            nullable = MANIFEST_SCHEMA.field(column).nullable
            if nullable:
                valid = pc.or_kleene(pc.is_null(table[column]), valid)
            bad = _first_bad(table[column], valid)
            if bad is not None or (not nullable and table[column].null_count):
                raise CorpusError(f"{path}: column {column}: {bad!r} {problem}")
        if pc.count_distinct(table["key"]).as_py() != table.num_rows:
            raise CorpusError(f"{path}: column key: a key is listed twice")
        shard_split = pc.replace_substring_regex(table["shard"], pattern="/.*$", replacement="")
        bad = _first_bad(table["key"], pc.equal(shard_split, table["split"]))
        if bad is not None:
            raise CorpusError(f"{path}: column split: sample {bad!r} is not in a shard of its split")
        # By kind, not label: curation may relabel a sample, but what made it does not change.
        made = pc.not_equal(table["kind"], REAL_KIND)
        bad = _first_bad(table["key"], pc.equal(made, pc.is_valid(table["generator"])))
        if bad is not None:
            raise CorpusError(f"{path}: column generator: sample {bad!r} is made without one, or real with one")
        return table

    def vouched(self, name: str) -> Path:
        """A file index.json vouches for, after checking its size and sha256 against the index."""
        path = self.root / name
        entry = self.index.files[name]
        if not path.is_file():
            raise CorpusError(f"{path} is missing")
        if path.stat().st_size != entry.bytes or file_sha256(path) != entry.sha256:
            raise CorpusError(f"{path}: sha256 differs from index.json (the file was altered)")
        return path

    def read_rejects(self) -> pa.Table:
        """rejects.parquet, checked against the index."""
        path = self.vouched(layout.REJECTS_NAME)
        try:
            return pq.read_table(path, schema=REJECTS_SCHEMA)
        except (OSError, pa.ArrowException) as err:
            raise CorpusError(f"{path}: not a readable rejects table ({err})") from None

    @property
    def name(self) -> str:
        """The corpus name."""
        return self.index.name

    @property
    def policy(self) -> ImagePolicy:
        """The image policy every sample was written with."""
        return self.index.image_policy

    @property
    def localized(self) -> bool:
        """Whether every sample carries a mask."""
        return layout.MASK_MEMBER in self.index.members

    @property
    def splits(self) -> list[str]:
        """The corpus's splits, in shard order."""
        return list(dict.fromkeys(shard.split for shard in self.index.shards))

    def shards(self, split: str | None = None) -> list[IndexShard]:
        """The shards index.json lists (of one split, or all)."""
        return [shard for shard in self.index.shards if split is None or shard.split == split]

    @cached_property
    def rows(self) -> list[dict[str, Any]]:
        """Every manifest row as a dict (real nulls), in manifest order."""
        return self.table.to_pylist()

    @cached_property
    def rows_by_key(self) -> dict[str, dict[str, Any]]:
        """Manifest rows by key."""
        return {row["key"]: row for row in self.rows}

    def resolved_spec(self) -> dict[str, Any]:
        """spec.resolved.yaml as a mapping."""
        path = self.vouched(layout.RESOLVED_SPEC_NAME)
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, ValueError, yaml.YAMLError) as err:
            raise CorpusError(f"{path}: not readable YAML ({type(err).__name__})") from None
        if not isinstance(data, dict):
            raise CorpusError(f"{path}: not a YAML mapping")
        return data

    def iter_samples(self, split: str | None = None) -> Iterator[CorpusSample]:
        """Every sample of the listed shards (of one split, or all), streamed shard by shard in key order.

        A member whose key is not the manifest's row of that shard, or whose extension is not one
        of the corpus's members, raises CorpusError naming the shard.
        """
        for shard in self.shards(split):
            yield from self.iter_samples_of(shard)

    def iter_samples_of(self, shard: IndexShard) -> Iterator[CorpusSample]:
        """The samples of one listed shard, in tar order (key order), each member read once."""
        allowed = set(self.index.members)
        rows = self.rows_by_key
        path = self.layout.shard(shard.path)
        if not path.is_file():
            raise CorpusError(f"{shard.path}: shard is missing")
        current: str | None = None
        members: dict[str, bytes] = {}
        seen: set[str] = set()
        try:
            for key, ext, data in read_members(path):
                if key != current:
                    if current is not None:
                        yield self._sample(shard, current, members, rows)
                    if key in seen:
                        raise CorpusError(f"{shard.path}: sample {key!r} appears twice")
                    seen.add(key)
                    current, members = key, {}
                if ext not in allowed or ext in members:
                    raise CorpusError(f"{shard.path}: member {key}.{ext} is not a sample member or is repeated")
                members[ext] = data
        except (OSError, EOFError, tarfile.TarError) as err:
            raise CorpusError(f"{shard.path}: not a readable tar ({err})") from None
        if current is not None:
            yield self._sample(shard, current, members, rows)
        listed = self.shard_counts.get(shard.path, 0)
        if len(seen) != listed:
            raise CorpusError(f"{shard.path}: holds {len(seen)} samples, the manifest lists {listed}")

    @cached_property
    def shard_counts(self) -> dict[str, int]:
        """Manifest rows per shard path."""
        counts = pc.value_counts(self.table["shard"]).to_pylist()
        return {entry["values"]: entry["counts"] for entry in counts}

    def _sample(
        self, shard: IndexShard, key: str, members: dict[str, bytes], rows: dict[str, dict[str, Any]]
    ) -> CorpusSample:
        row = rows.get(key)
        if row is None or row["shard"] != shard.path:
            raise CorpusError(f"{shard.path}: sample {key!r} is not in the manifest under this shard")
        expected = set(layout.sample_members([row["format"]], self.localized))
        if set(members) != expected:
            raise CorpusError(f"{shard.path}: sample {key} has members {sorted(members)}, expected {sorted(expected)}")
        return CorpusSample(key, shard.split, shard.path, members, row)
