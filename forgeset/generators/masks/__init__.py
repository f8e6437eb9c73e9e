"""Mask generators for localized edits; importing this package registers every type."""

from forgeset.generators.masks import annotation, boxes, brush, inverse  # noqa: F401
from forgeset.generators.masks.base import (
    NO_MASK,
    MaskContext,
    MaskGenerator,
    MaskParams,
    area_fraction,
    mask_generators,
)

__all__ = ["NO_MASK", "MaskContext", "MaskGenerator", "MaskParams", "area_fraction", "mask_generators"]
