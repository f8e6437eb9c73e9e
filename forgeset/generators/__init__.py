"""Generators and manipulations; importing this package registers every type."""

from forgeset.generators import class2image, inpaint, launder, text2image  # noqa: F401
from forgeset.generators.base import (
    GenerationJob,
    Generator,
    GeneratorParams,
    ManipulationJob,
    Manipulator,
    ManipulatorParams,
    StageOutput,
    generators,
    manipulators,
)

__all__ = [
    "GenerationJob",
    "Generator",
    "GeneratorParams",
    "ManipulationJob",
    "Manipulator",
    "ManipulatorParams",
    "StageOutput",
    "generators",
    "manipulators",
]
