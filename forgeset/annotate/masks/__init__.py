"""Mask generators for localized edits; importing this package registers every type."""

from forgeset.annotate.masks import annotation, boxes, brush, inverse  # noqa: F401
from forgeset.annotate.masks.base import (
    MaskContext,
    MaskGenerator,
    MaskParams,
    MaskRejected,
    area_fraction,
    mask_generators,
)

__all__ = ["MaskContext", "MaskGenerator", "MaskParams", "MaskRejected", "area_fraction", "mask_generators"]
