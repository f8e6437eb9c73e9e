"""Base of the prompt sources: a deterministic list of prompts the generators cycle through."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from forgeset.core.registry import Registry
from forgeset.core.strict_model import StrictModel


class PromptSourceParams(StrictModel):
    """Fields every prompt source has; subclasses add theirs and a `type` literal."""

    type: str

    @property
    def paired_source(self) -> str | None:
        """The real source whose samples these prompts pair with (same lineage group), if any."""
        return None


@dataclass(frozen=True)
class PromptItem:
    """A prompt; `pair_key` is the real sample whose caption it is (content-paired fakes); `base` the
    prompt it was made from when a source rewrote it (an expanded prompt's base prompt)."""

    text: str
    pair_key: str | None = None
    base: str | None = None


class PromptSource(ABC):
    """Produces prompts at plan time; the i-th fake of a generator takes prompt i mod len."""

    Params: ClassVar[type[PromptSourceParams]]

    def __init__(
        self, params: PromptSourceParams, base_dir: Path, cache_dir: Path | None = None, seed: int = 0
    ) -> None:
        """`cache_dir`: OUT's build state, where a source may keep what is costly to recompute (None:
        plan-only, write nothing); `seed`: the spec's seed, for sources that draw."""
        self.params = params
        self.base_dir = base_dir
        self.cache_dir = cache_dir
        self.seed = seed
        # Plan-only: only the number of prompts matters, so a source that runs a model may skip it.
        self.counts_only = False

    @abstractmethod
    def prompts(self, captions: dict[str, list[tuple[str, str | None]]]) -> list[PromptItem]:
        """The prompts; `captions` maps each real source name to its (key, caption) pairs."""

    def check(self) -> list[tuple[str, str]]:
        """Problems found before a build starts, as (field, message): a missing or unreadable file.

        Cheap and read-only; the preflight calls it so that a build fails before OUT is touched.
        """
        return []


prompt_sources: Registry = Registry("prompt source")
