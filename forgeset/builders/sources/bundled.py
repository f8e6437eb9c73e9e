"""Photos that ship inside scikit-image, cut into tiles: real images for offline runs."""

from __future__ import annotations

import hashlib
import io
from functools import lru_cache
from typing import Literal

import numpy as np
from PIL import Image
from pydantic import Field, field_validator

from forgeset.builders.sources.base import RealItem, RealSource, RealSourceParams, real_sources

# Photo name -> (scikit-image loader, license as given in scikit-image's docstrings).
BUNDLED_PHOTOS: dict[str, tuple[str, str]] = {
    "astronaut": ("astronaut", "public domain (NASA)"),
    "coffee": ("coffee", "CC0 (Rachel Michetti)"),
    "chelsea": ("chelsea", "CC0 (Stefan van der Walt)"),
    "rocket": ("rocket", "public domain (SpaceX)"),
    "hubble": ("hubble_deep_field", "public domain (NASA)"),
    "retina": ("retina", "CC0 (Mikael Haggstrom)"),
    "ihc": ("immunohistochemistry", "no known copyright restrictions"),
    "motorcycle": ("stereo_motorcycle", "Middlebury stereo 2014 (research use)"),
}


@lru_cache(maxsize=16)
def _photo(name: str) -> np.ndarray:
    import skimage.data

    loaded = getattr(skimage.data, BUNDLED_PHOTOS[name][0])()
    return loaded[0] if name == "motorcycle" else loaded  # stereo_motorcycle returns (left, right, disp)


@real_sources.register("bundled")
class BundledPhotos(RealSource):
    """Non-overlapping `tile` x `tile` crops of scikit-image's colour photos.

    Near-uniform tiles (the black corners of the retina photo, empty sky) are skipped: a flat
    real tile is a shortcut, not a photo. A tile identical to an earlier one is skipped too (it
    would land in two splits: leakage). At most `max_tiles` per photo, spread evenly over its
    grid, so no single photo dominates the real class.
    """

    class Params(RealSourceParams):
        type: Literal["bundled"] = "bundled"
        photos: list[str] = Field(default_factory=lambda: list(BUNDLED_PHOTOS))
        tile: int = Field(128, ge=16, le=1024, description="tile side in source pixels")
        max_tiles: int | None = Field(32, gt=0, description="tiles per photo at most (evenly spread)")
        min_std: float = Field(4.0, ge=0.0, description="skip tiles whose grey-level std is lower")

        @field_validator("photos")
        @classmethod
        def _known(cls, photos: list[str]) -> list[str]:
            unknown = sorted(set(photos) - set(BUNDLED_PHOTOS))
            if unknown:
                raise ValueError(f"unknown photos {unknown}; known: {sorted(BUNDLED_PHOTOS)}")
            return photos

    params: Params

    def list_items(self) -> list[RealItem]:
        tile = self.params.tile
        items: list[RealItem] = []
        seen: set[bytes] = set()
        for name in self.params.photos:
            photo = _photo(name)
            cells = []
            for row in range(photo.shape[0] // tile):
                for col in range(photo.shape[1] // tile):
                    crop = photo[row * tile : (row + 1) * tile, col * tile : (col + 1) * tile]
                    grey = crop.mean(axis=2) if crop.ndim == 3 else crop
                    digest = hashlib.sha256(np.ascontiguousarray(crop).tobytes()).digest()
                    if grey.std() >= self.params.min_std and digest not in seen:
                        seen.add(digest)
                        cells.append((row, col))
            limit = self.params.max_tiles
            if limit and len(cells) > limit:
                picks = np.unique(np.linspace(0, len(cells) - 1, limit).round().astype(int))
                cells = [cells[i] for i in picks]
            items.extend(RealItem(ref=f"{name}/r{row}c{col}", license=BUNDLED_PHOTOS[name][1]) for row, col in cells)
        return items

    def read(self, item: RealItem) -> bytes:
        name, cell = item.ref.split("/")
        row, col = (int(v) for v in cell[1:].split("c"))
        tile = self.params.tile
        crop = _photo(name)[row * tile : (row + 1) * tile, col * tile : (col + 1) * tile]
        buffer = io.BytesIO()
        Image.fromarray(np.ascontiguousarray(crop)).save(buffer, format="PNG", compress_level=1)
        return buffer.getvalue()
