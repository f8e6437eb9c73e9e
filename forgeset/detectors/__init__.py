"""Baseline detectors; importing this package registers every detector type."""

from forgeset.detectors import clip_probe, cnn, npr, rigid, spectrum, watermark  # noqa: F401
from forgeset.detectors.base import Detector, DetectorParams, detectors, load_detector

__all__ = ["Detector", "DetectorParams", "detectors", "load_detector"]
