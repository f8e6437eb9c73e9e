"""Prompts from a UTF-8 text file, one per line (blank lines and # comments skipped)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from forgeset.builders.prompts.base import PromptItem, PromptSource, PromptSourceParams, prompt_sources

MAX_PROMPT_FILE_BYTES = 64 * 2**20
"""A prompt file larger than this is refused before it is read (it is held in memory at plan time)."""


def read_prompt_file(path: Path) -> str:
    """The text of a prompt file; a ValueError (FileNotFoundError when absent) that names it otherwise."""
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_PROMPT_FILE_BYTES + 1)
    except FileNotFoundError:
        raise FileNotFoundError(f"prompt file {path} does not exist") from None
    except OSError as err:
        raise ValueError(f"prompt file {path} cannot be read: {err.strerror or err}") from None
    if len(data) > MAX_PROMPT_FILE_BYTES:
        limit = MAX_PROMPT_FILE_BYTES
        shown = f"{limit // 2**20} MiB" if limit % 2**20 == 0 else f"{limit} bytes"
        raise ValueError(f"prompt file {path} is larger than {shown}")
    if b"\0" in data:
        raise ValueError(f"prompt file {path} is not UTF-8 text (it holds NUL bytes: a binary file?)")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ValueError(f"prompt file {path} is not UTF-8 text (invalid byte at offset {err.start})") from None


@prompt_sources.register("file")
class FilePrompts(PromptSource):
    """Lines of `path` in file order."""

    class Params(PromptSourceParams):
        type: Literal["file"] = "file"
        path: str = Field(description="text file, relative to the spec file unless absolute")

    params: Params

    @property
    def path(self) -> Path:
        """The prompt file, relative to the spec file's folder unless absolute."""
        path = Path(self.params.path)
        return path if path.is_absolute() else self.base_dir / path

    def check(self) -> list[tuple[str, str]]:
        try:
            self.prompts({})
        except (FileNotFoundError, ValueError) as err:
            return [("path", f"{err}; fix `path` (relative to the spec file's folder) or the file")]
        return []

    def prompts(self, captions: dict[str, list[tuple[str, str | None]]]) -> list[PromptItem]:
        path = self.path
        lines = [line.strip() for line in read_prompt_file(path).splitlines()]
        items = [PromptItem(line) for line in lines if line and not line.startswith("#")]
        if not items:
            raise ValueError(f"prompt file {path} holds no prompts")
        return items
