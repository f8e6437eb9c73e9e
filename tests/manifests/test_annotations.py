"""KEY.ann.json: mask regions are the mask's exact component boxes; untrusted members are refused field by field."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from forgeset.manifests.annotations import (
    LABEL_MAX_LENGTH,
    NOTE_MAX_LENGTH,
    REGIONS_MAX,
    AnnotationError,
    Region,
    annotation_member,
    make_region,
    mask_pixel_boxes,
    mask_regions,
    parse_annotation,
    pixel_box,
)


def _components(mask: np.ndarray) -> list[tuple[int, int, int, int]]:
    """Component boxes by OpenCV (8-connected), end-exclusive: an independent reference."""
    count, _, stats, _ = cv2.connectedComponentsWithStats((mask > 0).astype(np.uint8), connectivity=8)
    boxes = [(int(x), int(y), int(x + w), int(y + h)) for x, y, w, h, _ in stats[1:count]]
    return sorted(boxes, key=lambda b: (b[1], b[0], b[3], b[2]))


def test_mask_regions_are_the_exact_component_boxes() -> None:
    mask = np.zeros((40, 50), np.uint8)
    mask[2:5, 3:9] = 255
    mask[20:31, 40:42] = 255
    mask[31, 42] = 255  # touches the previous part diagonally: the same component
    mask[35:38, 0:2] = 1
    assert mask_pixel_boxes(mask) == _components(mask) == [(3, 2, 9, 5), (40, 20, 43, 32), (0, 35, 2, 38)]
    regions = mask_regions(mask, "inpaint")
    assert [r.box for r in regions] == [(0.06, 0.05, 0.12, 0.075), (0.8, 0.5, 0.06, 0.3), (0.0, 0.875, 0.04, 0.075)]
    assert {(r.label, r.source, r.note) for r in regions} == {("inpaint", "mask", "")}
    assert [pixel_box(r.box, 50, 40) for r in regions] == _components(mask)
    assert mask_regions(np.zeros((8, 8), np.uint8)) == []


def test_many_specks_keep_the_largest_components() -> None:
    mask = np.zeros((64, 64), np.uint8)
    mask[::2, ::2] = 255  # 1024 isolated pixels
    mask[0:9, 0:9] = 255  # one large part
    boxes = mask_pixel_boxes(mask)
    assert len(boxes) == REGIONS_MAX and (0, 0, 9, 9) in boxes


def test_member_round_trip() -> None:
    regions = [Region("hands", (0.1, 0.2, 0.3, 0.4), "six fingers\non the left", "human")]
    data = annotation_member(50, 40, regions)
    document = json.loads(data)
    assert document == {
        "format": 1,
        "width": 50,
        "height": 40,
        "regions": [
            {
                "label": "hands",
                "box": [0.1, 0.2, 0.3, 0.4],
                "box_px": [5, 8, 20, 24],
                "note": "six fingers\non the left",
                "source": "human",
            }
        ],
    }
    assert list(document) == sorted(document)  # sorted keys: the same regions give the same bytes
    assert parse_annotation(data, 50, 40, "k") == regions


def _document(**region: object) -> dict[str, object]:
    base = {"label": "a", "box": [0.25, 0.25, 0.5, 0.5], "box_px": [8, 8, 24, 24], "note": "", "source": "human"}
    return {"format": 1, "width": 32, "height": 32, "regions": [{**base, **region}]}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"box": [0.25, 0.25, 0.0, 0.5]},
            "regions.0.box: Value error, box [0.25, 0.25, 0.0, 0.5] has a width",
        ),
        ({"box": [0.75, 0.25, 0.5, 0.5]}, "leaves the image"),
        ({"box": [-0.1, 0.25, 0.5, 0.5]}, "leaves the image"),
        ({"box": [0.25, 0.25, 0.5]}, "field regions.0.box"),
        ({"box": ["0.25", 0.25, 0.5, 0.5]}, "field regions.0.box.0"),
        ({"box_px": [8, 8, 24, 25]}, "box_px does not match its relative box"),
        ({"box_px": [8, 8, 24, 40]}, "box_px [8, 8, 24, 40] is not inside the image"),
        ({"label": ""}, "field regions.0.label"),
        ({"label": "x" * (LABEL_MAX_LENGTH + 1)}, "field regions.0.label"),
        ({"label": "a\nb"}, "regions.0.label: Value error, contains a control character"),
        ({"label": 3}, "field regions.0.label: Input should be a valid string"),
        ({"note": "n" * (NOTE_MAX_LENGTH + 1)}, "field regions.0.note"),
        ({"note": "\x1b[31m"}, "regions.0.note: Value error, contains a control character"),
        ({"source": "robot"}, "field regions.0.source"),
        ({"path": "../x"}, "field regions.0.path: Extra inputs are not permitted"),
    ],
)
def test_a_malformed_region_is_refused_naming_the_field(change: dict[str, object], message: str) -> None:
    with pytest.raises(AnnotationError, match=r"^train/00000\.tar: sample k1") as caught:
        parse_annotation(json.dumps(_document(**change)).encode(), 32, 32, "train/00000.tar: sample k1")
    assert message in str(caught.value)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"[[[[", "Invalid JSON"),
        (b"\xff\xfe", "Invalid JSON"),
        (b"[" * 100_000 + b"]" * 100_000, "field (top level)"),
        (json.dumps({**_document(), "format": 2}).encode(), "field format"),
        (json.dumps({**_document(), "format": "1"}).encode(), "field format"),
        (json.dumps({**_document(), "width": 33}).encode(), "box_px does not match"),
        (json.dumps({**_document(), "regions": [_document()["regions"][0]] * (REGIONS_MAX + 1)}).encode(), "regions"),
    ],
)
def test_an_unreadable_member_is_refused(data: bytes, message: str) -> None:
    with pytest.raises(AnnotationError, match=r"^sample k1: ") as caught:
        parse_annotation(data, 32, 32, "sample k1")
    assert message in str(caught.value)


def test_a_member_of_another_image_size_is_refused() -> None:
    data = annotation_member(64, 64, [Region("a", (0.0, 0.0, 0.5, 0.5))])
    with pytest.raises(AnnotationError, match=r"^k: field width/height 64x64, the image is 32x32$"):
        parse_annotation(data, 32, 32, "k")


@pytest.mark.parametrize(
    ("box", "message"),
    [
        ([0.1, 0.2, 0.0, 0.4], "has a width or height <= 0"),
        ([0.1, 0.2, 0.3, -0.4], "has a width or height <= 0"),
        ([0.9, 0.2, 0.3, 0.4], "leaves the image"),
        ([0.1, float("nan"), 0.3, 0.4], "not a finite number"),
        ([0.1, 0.2, 0.3], "is not [x, y, w, h]"),
        (None, "is not [x, y, w, h]"),
        ([True, 0.2, 0.3, 0.4], "not a finite number"),
    ],
)
def test_make_region_refuses_a_bad_box_naming_where(box: object, message: str) -> None:
    with pytest.raises(AnnotationError, match=r"^sample k7: region 0: ") as caught:
        make_region("hands", box, "", "human", "sample k7: region 0")
    assert message in str(caught.value)


def test_make_region_rounds_and_clamps_within_tolerance() -> None:
    region = make_region("hands", [0.5, 0.1234567891, 0.5000004, 0.3], None, "human", "k")
    assert region == Region("hands", (0.5, 0.123457, 0.5, 0.3), "", "human")
