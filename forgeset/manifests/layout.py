"""The output layout: the one module that knows where everything lives under OUT.

```
OUT/
  spec.resolved.yaml  index.json  manifest.parquet  rejects.parquet
  croissant.json                  Croissant metadata, derived from the index (written after it)
  curation.parquet                decisions synced back from FiftyOne (curate sync)
  annotations.parquet             regions synced back from FiftyOne (curate sync)
  SPLIT/NNNNN.tar                 one folder per split (train, val, test, test_ood)
  validation/                     metrics.json, report.html, checkpoints/NAME.safetensors
  media/                          images extracted for FiftyOne (SPLIT/KEY.EXT, SPLIT/masks/KEY.png)
  .forgeset/                      build state: spec.sha256, build.lock, shards/SPLIT-NNNNN.{rows,
                                  rejects}.parquet and SPLIT-NNNNN.done.json (the done-marker,
                                  written last); sources/NAME.arrow (each real source listed once,
                                  for resumes); prompts/HASH.parquet (expanded prompts); publish/
```

Every other module asks this one for a path, a split name or a member name. Names read from a
corpus (keys, splits, generators, member names) become paths only through `path_inside`, which
refuses anything that is not a plain relative path or that resolves outside its target.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

SPLITS = ("train", "val", "test")
HOLDOUT_SPLIT = "test_ood"
ALL_SPLITS = (*SPLITS, HOLDOUT_SPLIT)
# A split without reals of its own is evaluated against another split's reals.
REALS_FROM = {HOLDOUT_SPLIT: "test"}

INDEX_NAME = "index.json"
MANIFEST_NAME = "manifest.parquet"
REJECTS_NAME = "rejects.parquet"
RESOLVED_SPEC_NAME = "spec.resolved.yaml"
CURATION_NAME = "curation.parquet"
ANNOTATIONS_NAME = "annotations.parquet"
STATE_DIR = ".forgeset"
SPEC_HASH_NAME = "spec.sha256"
SOURCE_INDEX_DIR = "sources"
PROMPT_CACHE_DIR = "prompts"
VALIDATION_DIR = "validation"
MEDIA_DIR = "media"
MASKS_DIR = "masks"
# Croissant (mlcroissant) metadata of a corpus, in the corpus, a release and an export.
CROISSANT_NAME = "croissant.json"
# A dataset card / an export's README with its `configs` and `dataset_info` front matter.
CARD_NAME = "README.md"
# The files a release carries beside its shards.
SIDE_FILES = (MANIFEST_NAME, INDEX_NAME, RESOLVED_SPEC_NAME, REJECTS_NAME)

# WebDataset member names (the part of a tar member's name after the key's first dot).
IMAGE_MEMBERS = {"png": "png", "jpeg": "jpg"}
MASK_MEMBER = "mask.png"
JSON_MEMBER = "json"
CLS_MEMBER = "cls"
# Regions (boxes, labels, notes) of a sample: optional, per sample (see manifests/annotations.py).
ANN_MEMBER = "ann.json"
OPTIONAL_MEMBERS = (ANN_MEMBER,)
# The file extension of an exported or extracted mask.
MASK_EXTENSION = "png"

_SHARD_PATH = re.compile(r"^(?P<split>[a-z_]+)/(?P<index>[0-9]{5})\.tar$")


class CorpusError(Exception):
    """A folder that is not a finished corpus, or one whose files fail validation; names file and field."""


class UnsafePath(CorpusError, ValueError):
    """A name from a corpus that would not stay inside the folder it is joined onto."""


def image_member(image_format: str) -> str:
    """The member extension of an image in `image_format` (an ImagePolicy format: png, jpeg)."""
    return IMAGE_MEMBERS[image_format]


def image_members(formats: list[str]) -> list[str]:
    """The image member extensions of these formats, sorted, once each."""
    return sorted({image_member(f) for f in formats})


def sample_members(formats: list[str], localized: bool, annotated: bool | None = None) -> list[str]:
    """Every member a sample of a corpus may have: its image, KEY.json, KEY.cls, KEY.mask.png if
    localized, and the optional KEY.ann.json if `annotated` (default: localized, as a build writes
    its masks' regions)."""
    optional = [ANN_MEMBER] if (localized if annotated is None else annotated) else []
    return sorted([*image_members(formats), JSON_MEMBER, CLS_MEMBER, *([MASK_MEMBER] if localized else []), *optional])


def required_members(members: list[str] | set[str]) -> set[str]:
    """The members every sample must have, of a corpus's `members` (the optional ones left out)."""
    return set(members) - set(OPTIONAL_MEMBERS)


def is_image_member(member: str) -> bool:
    """Whether a member name is an image (not the mask, json or cls)."""
    return member in IMAGE_MEMBERS.values()


def shard_path(split: str, index: int) -> str:
    """A shard's path inside OUT, e.g. train/00003.tar."""
    return f"{split}/{index:05d}.tar"


def parse_shard_path(path: str) -> tuple[str, int] | None:
    """(split, index) of a shard path written by `shard_path`, or None if it is not one."""
    match = _SHARD_PATH.fullmatch(path)
    if match is None or match["split"] not in ALL_SPLITS:
        return None
    return match["split"], int(match["index"])


def relative_name(target: object, *parts: str) -> str:
    """`part/...` joined as POSIX, refusing any part that could leave `target` (named in the error).

    Each part must be a non-empty relative POSIX path with no `..`, no backslash and no NUL. On
    object storage, where there are no links, this is the whole check.
    """
    for part in parts:
        if not isinstance(part, str) or not part or "\x00" in part or "\\" in part:
            raise UnsafePath(f"{part!r} is not a plain relative name")
        pure = PurePosixPath(part)
        if pure.is_absolute() or ".." in pure.parts or part.startswith("~"):
            raise UnsafePath(f"{part!r} would leave {target}")
    return "/".join(parts)


def path_inside(target: Path, *parts: str) -> Path:
    """`target / part / ...`, refusing any part that could leave `target`.

    Each part must pass `relative_name`, and the joined path, with links resolved, must lie
    inside `target`.
    """
    relative_name(target, *parts)
    joined = target.joinpath(*parts)
    root = Path(os.path.realpath(target))
    resolved = Path(os.path.realpath(joined))
    if resolved != root and root not in resolved.parents:
        raise UnsafePath(f"{'/'.join(parts)!r} resolves outside {target}")
    return joined


@dataclass(frozen=True)
class Layout:
    """The paths of one corpus folder (OUT)."""

    root: Path

    @property
    def index(self) -> Path:
        """index.json: written last; its presence marks a finished build."""
        return self.root / INDEX_NAME

    @property
    def manifest(self) -> Path:
        """manifest.parquet: one row per sample."""
        return self.root / MANIFEST_NAME

    @property
    def rejects(self) -> Path:
        """rejects.parquet: one row per refused input."""
        return self.root / REJECTS_NAME

    @property
    def resolved_spec(self) -> Path:
        """spec.resolved.yaml: the spec with every default filled in."""
        return self.root / RESOLVED_SPEC_NAME

    @property
    def curation(self) -> Path:
        """curation.parquet: decisions synced back from FiftyOne."""
        return self.root / CURATION_NAME

    @property
    def annotations(self) -> Path:
        """annotations.parquet: regions synced back from FiftyOne, applied by `filter`."""
        return self.root / ANNOTATIONS_NAME

    @property
    def state_dir(self) -> Path:
        """Build state (never published)."""
        return self.root / STATE_DIR

    @property
    def spec_hash(self) -> Path:
        """The spec hash a build in progress belongs to (resume only into the same spec)."""
        return self.state_dir / SPEC_HASH_NAME

    @property
    def build_lock(self) -> Path:
        """Held (flock) by the build writing to OUT; other builds into OUT are refused meanwhile."""
        return self.state_dir / "build.lock"

    @property
    def shard_states(self) -> Path:
        """Per-shard rows, rejects and done-markers."""
        return self.state_dir / "shards"

    @property
    def source_indexes(self) -> Path:
        """Each real source's listing (see `source_index`)."""
        return self.state_dir / SOURCE_INDEX_DIR

    @property
    def publish_dir(self) -> Path:
        """Where `publish` stages a release when no --dry-run folder is given."""
        return self.state_dir / "publish"

    @property
    def validation_dir(self) -> Path:
        """What `validate` writes: metrics.json, report.html, checkpoints/."""
        return self.root / VALIDATION_DIR

    @property
    def metrics(self) -> Path:
        """validation/metrics.json."""
        return self.validation_dir / "metrics.json"

    @property
    def report(self) -> Path:
        """validation/report.html."""
        return self.validation_dir / "report.html"

    @property
    def checkpoints(self) -> Path:
        """validation/checkpoints/, one NAME.safetensors per detector."""
        return self.validation_dir / "checkpoints"

    def checkpoint(self, detector: str) -> Path:
        """The checkpoint of detector `detector`."""
        return path_inside(self.checkpoints, f"{detector}.safetensors")

    def checkpoint_relative(self, detector: str) -> str:
        """The checkpoint's path relative to OUT, as metrics.json records it."""
        return f"{VALIDATION_DIR}/checkpoints/{detector}.safetensors"

    @property
    def media(self) -> Path:
        """Default folder for media extracted for FiftyOne."""
        return self.root / MEDIA_DIR

    def shard(self, relative: str) -> Path:
        """A shard file, from its path relative to OUT (checked to stay inside OUT)."""
        return path_inside(self.root, relative)

    def split_dirs(self) -> list[Path]:
        """Every folder a split's shards may lie in."""
        return [self.root / split for split in ALL_SPLITS]

    def shard_state(self, split: str, index: int) -> Path:
        """The stem of a shard's rows/rejects/marker files, e.g. .forgeset/shards/train-00003."""
        return self.shard_states / f"{split}-{index:05d}"

    @staticmethod
    def rows_file(state: Path) -> Path:
        """A shard's manifest rows."""
        return state.with_suffix(".rows.parquet")

    @staticmethod
    def rejects_file(state: Path) -> Path:
        """A shard's rejects."""
        return state.with_suffix(".rejects.parquet")

    @staticmethod
    def marker_file(state: Path) -> Path:
        """A shard's done-marker: written after its tar, rows and rejects."""
        return state.with_suffix(".done.json")


# What other commands write into OUT besides the build's vouched files: not part of the release,
# so verify neither vouches for them nor reports them as unknown.
_PRODUCT_DIRS = (STATE_DIR, VALIDATION_DIR, MEDIA_DIR)
# croissant.json is derived from the index after it is written (verify recomputes and compares it).
_PRODUCT_FILES = (CURATION_NAME, ANNOTATIONS_NAME, CROISSANT_NAME)


def is_product_path(relative: str) -> bool:
    """Whether a path inside OUT (POSIX, relative) is build state or another command's output."""
    first = relative.split("/", 1)[0]
    return first in _PRODUCT_DIRS or relative in _PRODUCT_FILES


def source_index(state_dir: Path, source: str) -> Path:
    """The listing of real source `source` (an Arrow IPC file) under a build's state folder `state_dir`."""
    return path_inside(state_dir / SOURCE_INDEX_DIR, f"{source}.arrow")


def prompt_cache(state_dir: Path, fingerprint: str) -> Path:
    """Generated prompts (parquet: base, expanded, fallback) kept under a build's state folder
    `state_dir`, one table per generation setting `fingerprint`, so a resume does not regenerate."""
    return path_inside(state_dir / PROMPT_CACHE_DIR, f"{fingerprint}.parquet")


def media_path(media: Path, split: str, key: str, member: str) -> Path:
    """Where an image or mask member of a sample is extracted for FiftyOne."""
    if member == MASK_MEMBER:
        return path_inside(media, split, MASKS_DIR, f"{key}.{MASK_EXTENSION}")
    return path_inside(media, split, f"{key}.{member}")
