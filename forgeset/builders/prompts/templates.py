"""Class-name templates, the GenImage / CIFAKE way: every template for every class."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from forgeset.builders.prompts.base import PromptItem, PromptSource, PromptSourceParams, prompt_sources


@prompt_sources.register("templates")
class TemplatePrompts(PromptSource):
    """Each template formatted with each class name, classes outermost (so counts stay balanced)."""

    class Params(PromptSourceParams):
        type: Literal["templates"] = "templates"
        templates: list[str] = Field(default_factory=lambda: ["a photo of a {}"], min_length=1)
        classes: list[str] = Field(min_length=1)

        @field_validator("templates")
        @classmethod
        def _one_slot(cls, templates: list[str]) -> list[str]:
            for template in templates:
                if template.count("{}") != 1:
                    raise ValueError(f"template {template!r} must contain exactly one '{{}}'")
            return templates

    params: Params

    def prompts(self, captions: dict[str, list[tuple[str, str | None]]]) -> list[PromptItem]:
        return [PromptItem(t.format(c)) for c in self.params.classes for t in self.params.templates]
