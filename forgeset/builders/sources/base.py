"""Base of the real-image sources: list items cheaply at plan time, read bytes on a worker."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from pydantic import Field

from forgeset.core.naming import NAME_PATTERN
from forgeset.core.registry import Registry
from forgeset.core.strict_model import StrictModel
from forgeset.manifests.storage import Storage, is_url


class RealSourceParams(StrictModel):
    """Fields every real source has; subclasses add theirs and a `type` literal."""

    type: str
    name: str | None = Field(None, pattern=NAME_PATTERN, description="used in sample keys; default: type")
    limit: int | None = Field(None, gt=0, description="take at most this many items (in listing order)")
    license: str | None = Field(None, description="license recorded for every item without its own")

    @property
    def source_name(self) -> str:
        """The name used in keys and the manifest's `source` column."""
        return self.name or self.type


@dataclass(frozen=True)
class RealItem:
    """One listed input: `ref` finds its bytes again (relative path, row, tar#member)."""

    ref: str
    caption: str | None = None
    license: str | None = None


class RealSource(ABC):
    """A place real images come from. Construction must be cheap: it also happens on workers."""

    Params: ClassVar[type[RealSourceParams]]

    def __init__(self, params: RealSourceParams, base_dir: Path) -> None:
        self.params = params
        self.base_dir = base_dir

    def items(self) -> list[RealItem]:
        """Listed items in a stable order, cut to `limit`."""
        listed = self.list_items()
        return listed[: self.params.limit] if self.params.limit else listed

    @abstractmethod
    def list_items(self) -> list[RealItem]:
        """Every item of the source, in a deterministic order."""

    @abstractmethod
    def read(self, item: RealItem) -> bytes:
        """The raw bytes of `item` (decoded and checked later by the intake)."""

    def check(self) -> list[tuple[str, str]]:
        """Problems found before a build starts, as (field, message): a missing folder or file.

        Cheap and read-only (no listing of a large source); the preflight calls it so that a
        build fails before OUT is touched.
        """
        return []

    def read_annotation(self, item: RealItem) -> object | None:
        """The item's annotation (mask image bytes or polygons) for annotation masks; None if none."""
        return None

    def resolve(self, path: str) -> Path:
        """A spec path, relative to the spec file's folder unless absolute."""
        candidate = Path(path).expanduser()
        return candidate if candidate.is_absolute() else self.base_dir / candidate

    def location(self, path: str) -> Storage:
        """A spec path or URL (s3://, gs://, memory://, file://) as a Storage; paths resolve as in `resolve`."""
        return Storage(path if is_url(path) else self.resolve(path))


real_sources: Registry = Registry("real source")
