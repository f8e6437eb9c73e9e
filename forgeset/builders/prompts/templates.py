"""Class-name templates, the GenImage / CIFAKE way: every template for every class."""

from __future__ import annotations

import string
from typing import Literal

from pydantic import Field, field_validator, model_validator

from forgeset.builders.prompts.base import PromptItem, PromptSource, PromptSourceParams, prompt_sources

MAX_PROMPTS = 1_000_000
"""The most prompts templates x classes may make (the list is built in memory at plan time)."""


def template_problem(template: str) -> str | None:
    """Why `template` cannot be formatted with one class name, or None when it can.

    A template holds exactly one `{}` (the class name) and nothing else in braces: no named or
    numbered field, conversion or format spec; a literal brace is written `{{` or `}}`.
    """
    try:
        fields = [
            (name, conversion, spec)
            for _, name, spec, conversion in string.Formatter().parse(template)
            if name is not None
        ]
    except ValueError as err:
        return f"template {template!r} is not a valid template ({err}); write a literal brace as '{{{{' or '}}}}'"
    for name, conversion, spec in fields:
        if name:
            return f"template {template!r} has an unknown field {{{name}}}; the only field is '{{}}' (the class name)"
        if conversion or spec:
            shown = (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "")
            return f"template {template!r} formats its field with {shown!r}; write a plain '{{}}'"
    if len(fields) != 1:
        return f"template {template!r} must contain exactly one '{{}}' (the class name), found {len(fields)}"
    return None


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
                problem = template_problem(template)
                if problem:
                    raise ValueError(problem)
            return templates

        @model_validator(mode="after")
        def _bounded(self) -> TemplatePrompts.Params:
            made = len(self.templates) * len(self.classes)
            if made > MAX_PROMPTS:
                raise ValueError(f"templates x classes makes {made} prompts; at most {MAX_PROMPTS} are allowed")
            return self

    params: Params

    def prompts(self, captions: dict[str, list[tuple[str, str | None]]]) -> list[PromptItem]:
        return [PromptItem(t.format(c)) for c in self.params.classes for t in self.params.templates]
