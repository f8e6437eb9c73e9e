"""Real-image sources; importing this package registers every source type."""

from forgeset.builders.sources import bundled, folder, huggingface, webdataset_tars  # noqa: F401
from forgeset.builders.sources.base import RealItem, RealSource, RealSourceParams, real_sources

__all__ = ["RealItem", "RealSource", "RealSourceParams", "real_sources"]
