"""Real images from a Hugging Face dataset (Hub name or local path) via `datasets`."""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Literal

from pydantic import Field

from forgeset.builders.sources.base import RealItem, RealSource, RealSourceParams, real_sources


@lru_cache(maxsize=4)
def _load(path: str, split: str, revision: str | None, image_column: str) -> Any:
    """The dataset with its image column left undecoded, so our intake sees the raw bytes."""
    import datasets

    dataset = datasets.load_dataset(path, split=split, revision=revision)
    if image_column not in dataset.column_names:
        raise KeyError(f"column {image_column!r} not in dataset {path!r} (columns: {dataset.column_names})")
    return dataset.cast_column(image_column, datasets.Image(decode=False))


@real_sources.register("huggingface")
class HuggingFaceSource(RealSource):
    """Rows of a `datasets` dataset; optional caption and license columns are carried along."""

    class Params(RealSourceParams):
        type: Literal["huggingface"] = "huggingface"
        path: str = Field(description="Hub dataset id or local folder, as datasets.load_dataset takes it")
        split: str = "train"
        revision: str | None = None
        image_column: str = "image"
        caption_column: str | None = None
        license_column: str | None = None
        annotation_column: str | None = Field(
            None, description="mask image or COCO-style polygons (normalised [0, 1]) for annotation masks"
        )

    params: Params

    def _dataset(self) -> Any:
        path = self.params.path
        local = self.resolve(path)
        return _load(
            str(local) if local.exists() else path, self.params.split, self.params.revision, self.params.image_column
        )

    def list_items(self) -> list[RealItem]:
        dataset = self._dataset()
        count = min(len(dataset), self.params.limit or len(dataset))
        captions = dataset[self.params.caption_column][:count] if self.params.caption_column else [None] * count
        licenses = dataset[self.params.license_column][:count] if self.params.license_column else [None] * count
        return [
            RealItem(ref=str(row), caption=captions[row], license=licenses[row] or self.params.license)
            for row in range(count)
        ]

    def read_annotation(self, item: RealItem) -> object | None:
        if not self.params.annotation_column:
            return None
        cell = self._dataset()[int(item.ref)][self.params.annotation_column]
        if isinstance(cell, dict) and "bytes" in cell:
            return cell["bytes"]
        return cell

    def read(self, item: RealItem) -> bytes:
        cell = self._dataset()[int(item.ref)][self.params.image_column]
        if cell.get("bytes"):
            return cell["bytes"]
        with open(cell["path"], "rb") as handle:
            return handle.read()
