"""KEY.ann.json: regions of a sample (boxes with a label and a free-text note), and the mask's own regions.

A sample may carry the optional member `KEY.ann.json` (layout.ANN_MEMBER):

```
{"format": 1, "width": W, "height": H,
 "regions": [{"label": str, "box": [x, y, w, h], "box_px": [x0, y0, x1, y1], "note": str,
              "source": "mask" | "human"}]}
```

`box` is relative (FiftyOne's `[x, y, w, h]` in [0, 1], 6 decimals); `box_px` the same box in
pixels, end-exclusive. A build writes one for every sample whose mask is non-empty (the mask's
connected components, source "mask"); `filter` rewrites them from the regions a curator drew in
FiftyOne (source "human"). Every member is untrusted input: `parse_annotation` checks every field's
type and length, and every box, before anything uses it. Labels and notes are shown, never used as
paths; whoever renders them escapes them.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from forgeset.manifests.layout import CorpusError

ANNOTATION_FORMAT = 1
LABEL_MAX_LENGTH = 64
NOTE_MAX_LENGTH = 2000
# A mask of many specks (brush strokes after a resize) keeps its largest components, not thousands.
REGIONS_MAX = 256
MASK_SOURCE = "mask"
HUMAN_SOURCE = "human"
SOURCES = (MASK_SOURCE, HUMAN_SOURCE)
# The label of a region found in a sample's mask (the edit the build made there).
MASK_LABEL = "edited"
DECIMALS = 6


# OUT/annotations.parquet (written by `curate sync`, applied by `filter`): one row per region.
ANNOTATIONS_SCHEMA = pa.schema(
    [
        ("key", pa.string()),
        ("region", pa.int32()),
        ("label", pa.string()),
        ("x", pa.float64()),
        ("y", pa.float64()),
        ("w", pa.float64()),
        ("h", pa.float64()),
        ("note", pa.string()),
        ("source", pa.string()),
        ("time", pa.string()),
    ]
)


class AnnotationError(CorpusError, ValueError):
    """A region or an ann.json member that is not valid; the message names the sample and the field."""


def _no_controls(value: str, newlines: bool) -> str:
    allowed = {"\n", "\t"} if newlines else set()
    if any((ord(c) < 32 or ord(c) == 127) and c not in allowed for c in value):
        raise ValueError("contains a control character")
    return value


class RegionModel(BaseModel):
    """One region as KEY.ann.json holds it (strict: no coercion, no extra fields)."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    label: Annotated[str, Field(min_length=1, max_length=LABEL_MAX_LENGTH)]
    box: tuple[float, float, float, float]
    box_px: tuple[int, int, int, int]
    note: Annotated[str, Field(max_length=NOTE_MAX_LENGTH)] = ""
    source: Literal["mask", "human"]

    @field_validator("label")
    @classmethod
    def _plain_label(cls, value: str) -> str:
        return _no_controls(value, newlines=False)

    @field_validator("note")
    @classmethod
    def _plain_note(cls, value: str) -> str:
        return _no_controls(value, newlines=True)

    @field_validator("box")
    @classmethod
    def _relative_box(cls, box: tuple[float, float, float, float]) -> tuple[float, float, float, float]:
        check_box(box)
        return box


class AnnotationModel(BaseModel):
    """KEY.ann.json."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    format: Literal[1]
    width: Annotated[int, Field(gt=0, le=1 << 16)]
    height: Annotated[int, Field(gt=0, le=1 << 16)]
    regions: Annotated[list[RegionModel], Field(max_length=REGIONS_MAX)]

    @model_validator(mode="after")
    def _pixel_boxes(self) -> AnnotationModel:
        for number, region in enumerate(self.regions):
            x0, y0, x1, y1 = region.box_px
            if not (0 <= x0 < x1 <= self.width and 0 <= y0 < y1 <= self.height):
                raise ValueError(f"regions.{number}.box_px {list(region.box_px)} is not inside the image")
            if region.box_px != pixel_box(region.box, self.width, self.height):
                raise ValueError(f"regions.{number}.box_px does not match its relative box")
        return self


def check_box(box: Any) -> tuple[float, float, float, float]:
    """`box` ([x, y, w, h], relative) as floats, or ValueError saying what is wrong with it.

    x and y lie in [0, 1), w and h are > 0, and the box ends inside the image (x + w <= 1, y + h <= 1).
    """
    if not isinstance(box, (list, tuple)) or len(box) != 4:
        raise ValueError(f"box {box!r} is not [x, y, w, h]")
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in box):
        raise ValueError(f"box {list(box)!r} holds a value that is not a finite number")
    x, y, w, h = (float(v) for v in box)
    if w <= 0 or h <= 0:
        raise ValueError(f"box {[x, y, w, h]} has a width or height <= 0")
    tolerance = 10.0**-DECIMALS
    if x < 0 or y < 0 or x + w > 1 + tolerance or y + h > 1 + tolerance:
        raise ValueError(f"box {[x, y, w, h]} leaves the image ([0, 1] relative coordinates)")
    return x, y, w, h


def pixel_box(box: tuple[float, float, float, float], width: int, height: int) -> tuple[int, int, int, int]:
    """A relative box in pixels (x0, y0, x1, y1), end-exclusive, at least one pixel, inside the image."""
    x, y, w, h = box
    x0 = min(width - 1, max(0, round(x * width)))
    y0 = min(height - 1, max(0, round(y * height)))
    x1 = min(width, max(x0 + 1, round((x + w) * width)))
    y1 = min(height, max(y0 + 1, round((y + h) * height)))
    return x0, y0, x1, y1


@dataclass(frozen=True)
class Region:
    """A labelled box on a sample: relative [x, y, w, h], a free-text note, where it came from."""

    label: str
    box: tuple[float, float, float, float]
    note: str = ""
    source: str = HUMAN_SOURCE


def make_region(label: Any, box: Any, note: Any, source: Any, where: str) -> Region:
    """A Region from untrusted values (the App, a side table), checked; AnnotationError names `where`."""
    try:
        x, y, w, h = (round(v, DECIMALS) for v in check_box(box))
        w, h = min(w, round(1 - x, DECIMALS)), min(h, round(1 - y, DECIMALS))  # within the tolerance: clamp
        model = RegionModel(
            label=label,
            box=(x, y, w, h),
            box_px=(0, 0, 1, 1),
            note="" if note is None else note,
            source=source,
        )
    except (ValueError, ValidationError) as err:
        raise AnnotationError(f"{where}: {_first_error(err)}") from None
    return Region(model.label, model.box, model.note, model.source)


def _first_error(err: Exception) -> str:
    if isinstance(err, ValidationError):
        first = err.errors(include_url=False)[0]
        field = ".".join(str(part) for part in first["loc"]) or "(top level)"
        return f"field {field}: {first['msg']}"
    return str(err)


def annotation_member(width: int, height: int, regions: list[Region]) -> bytes:
    """The bytes of KEY.ann.json for `regions` on a `width` x `height` image (sorted keys, UTF-8)."""
    document = {
        "format": ANNOTATION_FORMAT,
        "width": width,
        "height": height,
        "regions": [
            {**asdict(region), "box": list(region.box), "box_px": list(pixel_box(region.box, width, height))}
            for region in regions
        ],
    }
    data = json.dumps(document, sort_keys=True, ensure_ascii=False).encode("utf-8")
    AnnotationModel.model_validate_json(data)  # what we write, a reader accepts
    return data


def parse_annotation(data: bytes, width: int, height: int, where: str) -> list[Region]:
    """The regions of KEY.ann.json of a `width` x `height` image; AnnotationError names `where` and the field."""
    try:
        model = AnnotationModel.model_validate_json(data)  # pydantic's own parser: bounded depth, no recursion
    except ValidationError as err:
        raise AnnotationError(f"{where}: {_first_error(err)}") from None
    if (model.width, model.height) != (width, height):
        raise AnnotationError(
            f"{where}: field width/height {model.width}x{model.height}, the image is {width}x{height}"
        )
    return [Region(r.label, r.box, r.note, r.source) for r in model.regions]


def mask_pixel_boxes(mask: np.ndarray) -> list[tuple[int, int, int, int]]:
    """(x0, y0, x1, y1) of each 8-connected component of a mask's non-zero pixels, end-exclusive.

    Ordered top to bottom, left to right; when there are more than REGIONS_MAX, the largest
    (by pixels) are kept.
    """
    from scipy import ndimage

    labelled, count = ndimage.label(np.asarray(mask) > 0, structure=np.ones((3, 3), dtype=bool))
    if count == 0:
        return []
    slices = ndimage.find_objects(labelled)
    boxes = [(s[1].start, s[0].start, s[1].stop, s[0].stop) for s in slices]
    if count > REGIONS_MAX:
        sizes = np.bincount(labelled.ravel())[1:]
        keep = np.argsort(-sizes, kind="stable")[:REGIONS_MAX]
        boxes = [boxes[i] for i in keep]
    return sorted(boxes, key=lambda b: (b[1], b[0], b[3], b[2]))


def mask_regions(mask: np.ndarray, label: str = MASK_LABEL) -> list[Region]:
    """The regions of a mask's connected components (source "mask"); empty for an empty mask."""
    height, width = mask.shape[:2]
    regions = []
    for x0, y0, x1, y1 in mask_pixel_boxes(mask):
        box = (x0 / width, y0 / height, (x1 - x0) / width, (y1 - y0) / height)
        x, y, w, h = (round(v, DECIMALS) for v in box)
        regions.append(Region(label, (x, y, w, h), "", MASK_SOURCE))
    return regions


def read_annotations(path: Path, keys: set[str]) -> dict[str, list[Region]]:
    """annotations.parquet as each key's regions in region order, every row checked.

    An untrusted file: a key not in `keys`, a missing or repeated region number, or a bad region
    raises AnnotationError naming the file, the row and the key.
    """
    try:
        rows = pq.read_table(path, schema=ANNOTATIONS_SCHEMA).to_pylist()
    except Exception as err:  # any parse failure is one clear error
        raise AnnotationError(f"{path}: not a readable annotations table ({type(err).__name__}: {err})") from None
    numbered: dict[str, dict[int, Region]] = {}
    for number, row in enumerate(rows):
        where = f"{path}: row {number} (sample {row['key']!r})"
        if row["key"] not in keys:
            raise AnnotationError(f"{where}: the key is not in the corpus")
        regions = numbered.setdefault(row["key"], {})
        if row["region"] is None or row["region"] < 0 or row["region"] in regions:
            raise AnnotationError(f"{where}: field region {row['region']!r} is missing, negative or repeated")
        box = [row["x"], row["y"], row["w"], row["h"]]
        regions[row["region"]] = make_region(row["label"], box, row["note"], row["source"], where)
    return {key: [regions[n] for n in sorted(regions)] for key, regions in numbered.items()}
