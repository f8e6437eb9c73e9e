"""Prompts taken from a real source's captions, so each fake is paired with a real's content."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from forgeset.builders.prompts.base import PromptItem, PromptSource, PromptSourceParams, prompt_sources


@prompt_sources.register("captions")
class CaptionPrompts(PromptSource):
    """The captions of real source `source`, in its key order; each prompt remembers its real."""

    class Params(PromptSourceParams):
        type: Literal["captions"] = "captions"
        source: str = Field(description="name of a real source that has captions")

        @property
        def paired_source(self) -> str | None:
            """Each fake pairs with the real whose caption it took."""
            return self.source

    params: Params

    def prompts(self, captions: dict[str, list[tuple[str, str | None]]]) -> list[PromptItem]:
        if self.params.source not in captions:
            raise ValueError(f"prompts.source {self.params.source!r} is not a real source of this spec")
        items = [PromptItem(text, key) for key, text in captions[self.params.source] if text]
        if not items:
            raise ValueError(f"real source {self.params.source!r} has no captions")
        return items
