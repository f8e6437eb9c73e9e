"""Quality scorers for generated images (CLIP text agreement, aesthetics, sharpness); one file per metric.

Importing this package registers every metric.
"""

from forgeset.quality import aesthetic, clip_score, sharpness  # noqa: F401
from forgeset.quality.base import QualityCheck, QualityScorer, ScorerParams, quality_scorers

__all__ = ["QualityCheck", "QualityScorer", "ScorerParams", "quality_scorers"]
