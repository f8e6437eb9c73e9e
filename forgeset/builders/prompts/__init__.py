"""Prompt sources; importing this package registers every prompt source type."""

from forgeset.builders.prompts import captions, expand, file, templates  # noqa: F401
from forgeset.builders.prompts.base import PromptItem, PromptSource, PromptSourceParams, prompt_sources

__all__ = ["PromptItem", "PromptSource", "PromptSourceParams", "prompt_sources"]
