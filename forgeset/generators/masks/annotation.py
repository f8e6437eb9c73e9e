"""Masks from a source dataset's annotations: a mask image or COCO-style polygons."""

from __future__ import annotations

import io
from typing import Literal

import cv2
import numpy as np
from PIL import Image

from forgeset.core.rejection import SampleRejected
from forgeset.generators.masks.base import (
    NO_MASK,
    MaskContext,
    MaskGenerator,
    MaskParams,
    area_fraction,
    mask_generators,
)


def _instances(annotation: object, height: int, width: int) -> list[np.ndarray]:
    """Candidate masks at the output size from either a mask image or a list of polygons.

    Polygons are COCO's [x0, y0, x1, y1, ...] in coordinates normalised to [0, 1] by the source
    (the annotation's own `width`/`height` are applied when given as a dict).
    """
    if isinstance(annotation, (bytes, bytearray)):
        mask = np.asarray(
            Image.open(io.BytesIO(annotation)).convert("L").resize((width, height), Image.Resampling.NEAREST)
        )
        return [np.where(mask > 0, 255, 0).astype(np.uint8)]
    if isinstance(annotation, dict):
        scale_w, scale_h = width / annotation["width"], height / annotation["height"]
        polygons = annotation["polygons"]
    else:
        scale_w, scale_h, polygons = float(width), float(height), annotation
    masks = []
    for polygon in polygons or []:
        points = np.asarray(polygon, dtype=float).reshape(-1, 2) * [scale_w, scale_h]
        mask = np.zeros((height, width), dtype=np.uint8)
        cv2.fillPoly(mask, [np.round(points).astype(np.int32)], 255)
        masks.append(mask)
    return masks


@mask_generators.register("annotation")
class AnnotationMask(MaskGenerator):
    """One annotated instance whose area fits the range, chosen by the seeded RNG.

    The source must provide annotations (e.g. a Hugging Face source with `annotation_column`).
    Annotations are assumed to cover the whole source image; with `resize: center-crop` and a
    non-square source they are mapped through the same crop.
    """

    class Params(MaskParams):
        type: Literal["annotation"] = "annotation"

    params: Params

    def draw(self, rng: np.random.Generator, context: MaskContext) -> np.ndarray:
        if context.annotation is None:
            raise SampleRejected(NO_MASK, "the parent has no annotation")
        low, high = self.params.area
        fitting = [
            m for m in _instances(context.annotation, context.height, context.width) if low <= area_fraction(m) <= high
        ]
        if not fitting:
            raise SampleRejected(NO_MASK, f"no annotated instance has an area in [{low}, {high}]")
        return fitting[int(rng.integers(0, len(fitting)))]
