"""`Corpus.open(OUT)`: the one reader of a built corpus, which validates what it reads.

index.json and manifest.parquet are read once and checked before any command acts on them: the
index's shape and image policy, shard paths that are plain `SPLIT/NNNNN.tar` names of known
splits, and a manifest whose keys, splits, generators, sources and parents are plain names and
whose shards are the index's. Every file of a corpus is untrusted input: a doctored corpus is
refused with one error naming the file and the field, before anything is written anywhere.
Samples are streamed shard by shard (`iter_samples`), so no command holds the whole corpus.

The manifest is validated row group by row group, reading only the columns the checks need; the
reader keeps which row groups hold each shard's rows, so a shard's rows are read on their own
(`shard_rows`). `table`, `rows` and `rows_by_key` load the whole manifest, on first use only,
for the commands that want it whole.

OUT may be a local folder or an fsspec URL (s3://...): every read goes through `Storage`, shards
and the manifest are streamed from object storage, never downloaded whole.
"""

from __future__ import annotations

import json
import tarfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
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
from forgeset.manifests.shard_reader import file_sha256, read_members
from forgeset.manifests.storage import Storage

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
    def annotation(self) -> bytes | None:
        """KEY.ann.json (regions), if this sample has one (parse with manifests.annotations)."""
        return self.members.get(layout.ANN_MEMBER)

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


# Rows per batch when the manifest is validated or streamed.
BATCH_ROWS = 65_536
_NAME = f"^[a-z0-9][a-z0-9-]{{0,{NAME_MAX_LENGTH - 1}}}$"
_SOURCE = f"^[a-z0-9][a-z0-9-]{{0,{NAME_MAX_LENGTH - 1}}}:"
_NAME_COLUMNS = ("generator", "parent_key", "group")
# The columns the validation reads: the names, never the prompts or captions.
VALIDATED_COLUMNS = ("key", "split", "label", "kind", "shard", "format", *_NAME_COLUMNS, "source")


@dataclass(frozen=True)
class ManifestMap:
    """What validating the manifest learned: its rows, and which row groups hold each shard's rows."""

    rows: int = 0
    shard_counts: dict[str, int] = field(default_factory=dict)
    row_groups: dict[str, tuple[int, ...]] = field(default_factory=dict)


def _column_checks(table: pa.Table, listed: pa.Array) -> list[tuple[str, pa.ChunkedArray, str]]:
    """(column, valid, problem) per check, in the order problems are reported."""
    checks: list[tuple[str, pa.ChunkedArray, str]] = [
        ("key", pc.match_substring_regex(table["key"], _NAME), "is not a plain name"),
        ("split", pc.is_in(table["split"], pa.array(layout.ALL_SPLITS)), "is not a known split"),
        ("label", pc.is_in(table["label"], pa.array(list(LABELS))), "is not a label"),
        ("kind", pc.match_substring_regex(table["kind"], _NAME), "is not a plain name"),
        ("shard", pc.is_in(table["shard"], listed), "is not a shard listed in index.json"),
        ("format", pc.is_in(table["format"], pa.array(list(layout.IMAGE_MEMBERS))), "is not an image format"),
    ]
    for column in _NAME_COLUMNS:
        checks.append((column, pc.match_substring_regex(table[column], _NAME), "is not a plain name"))
    checks.append(
        ("source", pc.match_substring_regex(table["source"], _SOURCE), "does not start with a plain source name")
    )
    return checks


def _batch_problems(table: pa.Table, listed: pa.Array) -> list[str | None]:
    """Per check (column checks, then split and generator), the problem in this batch or None."""
    problems: list[str | None] = []
    for column, valid, problem in _column_checks(table, listed):
        nullable = MANIFEST_SCHEMA.field(column).nullable
        if nullable:
            valid = pc.or_kleene(pc.is_null(table[column]), valid)
        bad = _first_bad(table[column], valid)
        failed = bad is not None or (not nullable and table[column].null_count)
        problems.append(f"column {column}: {bad!r} {problem}" if failed else None)
    shard_split = pc.replace_substring_regex(table["shard"], pattern="/.*$", replacement="")
    bad = _first_bad(table["key"], pc.equal(shard_split, table["split"]))
    problems.append(None if bad is None else f"column split: sample {bad!r} is not in a shard of its split")
    # By kind, not label: curation may relabel a sample, but what made it does not change.
    made = pc.not_equal(table["kind"], REAL_KIND)
    bad = _first_bad(table["key"], pc.equal(made, pc.is_valid(table["generator"])))
    problems.append(None if bad is None else f"column generator: sample {bad!r} is made without one, or real with one")
    return problems


class Corpus:
    """A validated, finished corpus. Open it with `Corpus.open(OUT)`."""

    path_inside = staticmethod(layout.path_inside)

    def __init__(self, root: Path | str | Storage, index: IndexFile, manifest: ManifestMap) -> None:
        self.storage = Storage.of(root)
        """Where the corpus lives (a local folder or an object-storage URL)."""
        self.root = self.storage.local if self.storage.local is not None else Path(self.storage.url)
        """The corpus folder; for a corpus on object storage only a name for messages (read through `storage`)."""
        self.layout = layout.Layout(self.root)
        self.index = index
        self.manifest = manifest
        self._groups_cache: tuple[tuple[int, ...], pa.Table] | None = None
        self._vouched: dict[str, str] = {}  # files already checked against the index: each is hashed once

    def __getstate__(self) -> dict[str, Any]:
        """What a worker process receives: the index and manifest map, no loaded rows."""
        loaded = ("_groups_cache", "table", "rows", "rows_by_key")
        return {name: value for name, value in self.__dict__.items() if name not in loaded} | {"_groups_cache": None}

    @classmethod
    def open(cls, root: Path | str | Storage) -> Corpus:
        """Read and validate index.json and manifest.parquet of `root` (folder or URL); raise CorpusError if off."""
        storage = Storage.of(root)
        where = storage.local if storage.local is not None else storage.url
        if storage.local is not None and not storage.local.is_dir():
            raise CorpusError(f"{where} is not a folder")
        if not storage.exists(layout.INDEX_NAME):
            if storage.exists(layout.STATE_DIR, layout.SPEC_HASH_NAME):
                raise CorpusError(f"{where}: not a finished corpus (the build did not finish: resume it)")
            raise CorpusError(f"{where}: not a finished corpus (no {layout.INDEX_NAME}: not a forgeset build)")
        index = cls._read_index(storage)
        corpus = cls(storage, index, ManifestMap())
        corpus.vouched(layout.MANIFEST_NAME)
        corpus.manifest = corpus._read_manifest(index)
        return corpus

    @staticmethod
    def _read_index(storage: Storage) -> IndexFile:
        path = storage.url_of(layout.INDEX_NAME)
        try:
            data = json.loads(storage.read_bytes(layout.INDEX_NAME))
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

    def _open_manifest(self) -> pq.ParquetFile:
        """manifest.parquet opened for reading (from object storage: read in ranges as needed)."""
        path = self.storage.url_of(layout.MANIFEST_NAME)
        if not self.storage.exists(layout.MANIFEST_NAME):
            raise CorpusError(f"{path} is missing")
        try:
            if self.storage.local is not None:
                return pq.ParquetFile(self.layout.manifest)
            return pq.ParquetFile(self.storage.open_handle(layout.MANIFEST_NAME))
        except (OSError, pa.ArrowException) as err:
            raise CorpusError(f"{path}: not a readable parquet file ({err})") from None

    def _read_manifest(self, index: IndexFile) -> ManifestMap:
        """Validate the manifest row group by row group; problems are reported as a whole-table check would."""
        path = self.storage.url_of(layout.MANIFEST_NAME)
        parquet = self._open_manifest()
        schema = parquet.schema_arrow
        for expected in MANIFEST_SCHEMA:
            if expected.name not in schema.names:
                raise CorpusError(f"{path}: column {expected.name} is missing")
            if schema.field(expected.name).type != expected.type:
                raise CorpusError(
                    f"{path}: column {expected.name} is {schema.field(expected.name).type}, expected {expected.type}"
                )
        listed = pa.array([shard.path for shard in index.shards], pa.string())
        first_problem: dict[int, str] = {}
        keys: list[pa.Array] = []
        counts: Counter[str] = Counter()
        groups: dict[str, list[int]] = {}
        try:
            for group in range(parquet.num_row_groups):
                for batch in parquet.iter_batches(BATCH_ROWS, row_groups=[group], columns=list(VALIDATED_COLUMNS)):
                    table = pa.Table.from_batches([batch])
                    for check, problem in enumerate(_batch_problems(table, listed)):
                        if problem is not None:
                            first_problem.setdefault(check, problem)
                    keys.append(batch.column("key"))
                    for entry in pc.value_counts(table["shard"]).to_pylist():
                        counts[entry["values"]] += entry["counts"]
                        shard_groups = groups.setdefault(entry["values"], [])
                        if not shard_groups or shard_groups[-1] != group:
                            shard_groups.append(group)
        except (OSError, pa.ArrowException) as err:
            raise CorpusError(f"{path}: not a readable parquet file ({err})") from None
        column_checks = len(_column_checks(MANIFEST_SCHEMA.empty_table(), listed))
        reported = [check for check in sorted(first_problem) if check < column_checks]
        if reported:
            raise CorpusError(f"{path}: {first_problem[reported[0]]}")
        rows = sum(len(array) for array in keys)
        if keys and pc.count_distinct(pa.chunked_array(keys)).as_py() != rows:
            raise CorpusError(f"{path}: column key: a key is listed twice")
        if first_problem:
            raise CorpusError(f"{path}: {first_problem[min(first_problem)]}")
        return ManifestMap(rows, dict(counts), {shard: tuple(ids) for shard, ids in groups.items()})

    def manifest_batches(self, columns: list[str] | None = None) -> Iterator[pa.Table]:
        """The manifest in order, a row group (or BATCH_ROWS rows) at a time, of `columns` (default all)."""
        parquet = self._open_manifest()
        for batch in parquet.iter_batches(BATCH_ROWS, columns=columns or MANIFEST_SCHEMA.names):
            yield pa.Table.from_batches([batch])

    def shard_rows(self, shard: str) -> pa.Table:
        """The manifest rows of one shard (manifest order), reading only the row groups that hold them."""
        groups = self.manifest.row_groups.get(shard, ())
        if not groups:
            return MANIFEST_SCHEMA.empty_table()
        # Consecutive shards share row groups (finalize writes whole shards, about 64k rows a group):
        # the last groups read are kept, so reading every shard in order decodes each group once.
        cached = self._groups_cache
        if cached is None or cached[0] != groups:
            parquet = self._open_manifest()
            cached = groups, parquet.read_row_groups(list(groups), columns=MANIFEST_SCHEMA.names)
            self._groups_cache = cached
        table = cached[1]
        return table.filter(pc.equal(table["shard"], shard))

    @cached_property
    def table(self) -> pa.Table:
        """The whole manifest as one table (loaded on first use: prefer `manifest_batches` or `shard_rows`)."""
        if self.storage.local is not None:
            return pq.read_table(self.layout.manifest, columns=MANIFEST_SCHEMA.names)
        return self._open_manifest().read(columns=MANIFEST_SCHEMA.names)

    def vouched(self, name: str) -> str:
        """Check a file index.json vouches for (size and sha256) against the index; returns its location.

        Each file is hashed once per opened corpus (verify, the index checks and croissant all read the spec).
        """
        if name in self._vouched:
            return self._vouched[name]
        storage = self.storage
        path = storage.url_of(name)
        entry = self.index.files[name]
        if storage.local is not None:
            local = storage.local_path(name)
            if not local.is_file():
                raise CorpusError(f"{path} is missing")
            altered = local.stat().st_size != entry.bytes or file_sha256(local) != entry.sha256
        else:
            if not storage.exists(name):
                raise CorpusError(f"{path} is missing")
            altered = storage.size(name) != entry.bytes or storage.sha256(name) != entry.sha256
        if altered:
            raise CorpusError(f"{path}: sha256 differs from index.json (the file was altered)")
        self._vouched[name] = path
        return path

    def read_rejects(self) -> pa.Table:
        """rejects.parquet, checked against the index."""
        path = self.vouched(layout.REJECTS_NAME)
        try:
            if self.storage.local is not None:
                return pq.read_table(path, schema=REJECTS_SCHEMA)
            with self.storage.open(layout.REJECTS_NAME) as handle:
                return pq.read_table(handle, schema=REJECTS_SCHEMA)
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
            data = yaml.safe_load(self.storage.read_bytes(layout.RESOLVED_SPEC_NAME).decode("utf-8"))
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
        if not self.shard_exists(shard.path):
            raise CorpusError(f"{shard.path}: shard is missing")
        rows = {row["key"]: row for row in self.shard_rows(shard.path).to_pylist()}
        current: str | None = None
        members: dict[str, bytes] = {}
        seen: set[str] = set()
        try:
            for key, ext, data in self._shard_members(shard.path):
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

    def shard_exists(self, relative: str) -> bool:
        """Whether a listed shard's file is there (locally: a regular file inside OUT)."""
        if self.storage.local is not None:
            return self.layout.shard(relative).is_file()
        return self.storage.exists(relative)

    def _shard_members(self, relative: str) -> Iterator[tuple[str, str, bytes]]:
        """A shard's members in tar order; from object storage streamed, never downloaded whole."""
        if self.storage.local is not None:
            yield from read_members(self.layout.shard(relative))
            return
        with self.storage.open(relative) as handle:
            yield from read_members(handle)

    @property
    def shard_counts(self) -> dict[str, int]:
        """Manifest rows per shard path."""
        return self.manifest.shard_counts

    def _sample(
        self, shard: IndexShard, key: str, members: dict[str, bytes], rows: dict[str, dict[str, Any]]
    ) -> CorpusSample:
        row = rows.get(key)
        if row is None or row["shard"] != shard.path:
            raise CorpusError(f"{shard.path}: sample {key!r} is not in the manifest under this shard")
        expected = layout.required_members(layout.sample_members([row["format"]], self.localized))
        if layout.required_members(set(members)) != expected:  # optional members: `allowed` checked them
            raise CorpusError(f"{shard.path}: sample {key} has members {sorted(members)}, expected {sorted(expected)}")
        return CorpusSample(key, shard.split, shard.path, members, row)
