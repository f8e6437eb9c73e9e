"""Generators; importing this package registers every generator type."""

from forgeset.generators import text2image  # noqa: F401
from forgeset.generators.base import GenerationJob, Generator, GeneratorParams, generators

__all__ = ["GenerationJob", "Generator", "GeneratorParams", "generators"]
