"""Prompts from a UTF-8 text file, one per line (blank lines and # comments skipped)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from forgeset.builders.prompts.base import PromptItem, PromptSource, PromptSourceParams, prompt_sources


@prompt_sources.register("file")
class FilePrompts(PromptSource):
    """Lines of `path` in file order."""

    class Params(PromptSourceParams):
        type: Literal["file"] = "file"
        path: str = Field(description="text file, relative to the spec file unless absolute")

    params: Params

    def prompts(self, captions: dict[str, list[tuple[str, str | None]]]) -> list[PromptItem]:
        path = Path(self.params.path)
        path = path if path.is_absolute() else self.base_dir / path
        lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
        items = [PromptItem(line) for line in lines if line and not line.startswith("#")]
        if not items:
            raise ValueError(f"prompt file {path} holds no prompts")
        return items
