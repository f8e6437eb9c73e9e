"""Prompts expanded by a causal language model, the DRAGON way: short base prompts become descriptions.

`base` is another prompt source (templates, file, captions); each distinct base prompt is expanded
once through transformers' text generation (`template` formatted with it, sampled at
`temperature`, seeded from the seed and the base text), so every generator that uses the source
gets the same expanded prompt for the same base prompt. Expansions are kept in OUT's build state
(a parquet table per expansion setting), so a resume or a second plan does not run the model again;
a plan without a state folder (`--plan-only`) computes them and writes nothing.

The model is a Hub id, a local folder (relative to the spec file) or `builtin:tiny-lm` (random
weights: gibberish, for offline runs and tests); weights load as safetensors, never remote code.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import string
import sys
import tempfile
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator

import forgeset.builders.prompts.captions
import forgeset.builders.prompts.file
import forgeset.builders.prompts.templates
import forgeset.builders.prompts.tiny_lm  # noqa: F401  (the sources a base may be; builtin:tiny-lm)
from forgeset.builders.prompts.base import PromptItem, PromptSource, PromptSourceParams, prompt_sources
from forgeset.core.builtin_models import builtin_names, builtin_revision, is_builtin, materialize_builtin
from forgeset.core.seeds import sample_seed
from forgeset.manifests import layout

log = logging.getLogger(__name__)

DEFAULT_TEMPLATE = "Expand this image prompt into one detailed description.\nPrompt: {prompt}\nDescription:"


def _template_problem(template: str) -> str | None:
    """Why `template` cannot take the base prompt, or None: exactly one plain `{prompt}` field."""
    try:
        fields = [(name, spec, conversion) for _, name, spec, conversion in string.Formatter().parse(template)]
    except ValueError as err:
        return f"template {template!r} is not a valid template ({err}); write a literal brace as '{{{{' or '}}}}'"
    named = [(name, spec, conversion) for name, spec, conversion in fields if name is not None]
    if [name for name, _, _ in named] != ["prompt"] or any(spec or conversion for _, spec, conversion in named):
        return f"template {template!r} must contain '{{prompt}}' exactly once and no other field"
    return None


class _LanguageModel:
    """A causal LM and its tokenizer, generating one seeded continuation per prompt."""

    def __init__(self, model: Any, tokenizer: Any, device: str) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.device = device

    def continue_text(self, text: str, seed: int, max_new_tokens: int, temperature: float) -> str:
        """The generated continuation of `text` (the prompt itself not echoed), decoded."""
        import torch

        encoded = self.tokenizer(text, return_tensors="pt")
        limit = int(getattr(self.model.config, "max_position_embeddings", 0) or 0)
        ids, mask = encoded["input_ids"], encoded["attention_mask"]
        if limit:
            max_new_tokens = min(max_new_tokens, limit - 1)
        if limit and ids.shape[1] + max_new_tokens > limit:  # keep the end: the template's instruction
            keep = max(limit - max_new_tokens, 1)
            ids, mask = ids[:, -keep:], mask[:, -keep:]
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.tokenizer.eos_token_id
        devices = [torch.cuda.current_device()] if self.device == "cuda" else []
        with torch.random.fork_rng(devices=devices), torch.inference_mode():
            torch.manual_seed(seed)
            out = self.model.generate(
                input_ids=ids.to(self.device),
                attention_mask=mask.to(self.device),
                do_sample=True,
                temperature=temperature,
                max_new_tokens=max_new_tokens,
                pad_token_id=pad,
            )
        return str(self.tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=True))


def _load_language_model(model: str, revision: str | None, base_dir: Path, device: str) -> _LanguageModel:
    """Load `model` (builtin, folder or Hub id) with safetensors weights and no remote code."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if is_builtin(model):
        location, revision = str(materialize_builtin(model, "prompt")), None
    else:
        local = Path(model).expanduser()
        local = local if local.is_absolute() else base_dir / local
        location = str(local) if local.is_dir() else model
    pinned: dict[str, Any] = {"revision": revision} if revision else {}
    chosen = "cuda" if device == "cuda" or (device == "auto" and torch.cuda.is_available()) else "cpu"
    tokenizer = AutoTokenizer.from_pretrained(location, **pinned)
    language_model: Any = AutoModelForCausalLM.from_pretrained(location, use_safetensors=True, **pinned)
    return _LanguageModel(language_model.to(chosen).eval(), tokenizer, chosen)


def clean_expansion(generated: str, prompt: str) -> str:
    """The generated text on one line: the prompt if the model echoed it dropped, whitespace collapsed."""
    text = " ".join(generated.split())
    echoed = " ".join(prompt.split())
    if echoed and text.startswith(echoed):
        text = text[len(echoed) :].strip()
    return text


@prompt_sources.register("expand")
class ExpandPrompts(PromptSource):
    """Each prompt of `base`, expanded by a causal LM; the base text is kept with it."""

    class Params(PromptSourceParams):
        type: Literal["expand"] = "expand"
        # Every prompt source registered before this one (never `expand` itself): its own fields are
        # validated, so errors name `prompts.base.<field>`.
        base: prompt_sources.params_union() = Field(  # type: ignore[valid-type]
            description="the prompt source whose prompts are expanded"
        )
        model: str = Field(description="causal LM: Hub id, local folder or builtin:tiny-lm")
        revision: str | None = Field(None, description="Hub revision (branch, tag or commit) of the model")
        template: str = Field(DEFAULT_TEMPLATE, description="what the model continues; holds {prompt} once")
        max_new_tokens: int = Field(48, ge=1, le=1024)
        temperature: float = Field(0.8, gt=0, le=10)
        seed: int | None = Field(None, ge=0, description="sampling seed (the spec's seed when not given)")
        device: Literal["auto", "cpu", "cuda"] = "auto"

        @field_validator("model")
        @classmethod
        def _known_builtin(cls, model: str) -> str:
            if is_builtin(model) and model not in builtin_names("prompt"):
                raise ValueError(
                    f"unknown builtin language model {model!r}; known: {', '.join(builtin_names('prompt'))}"
                )
            return model

        @field_validator("template")
        @classmethod
        def _one_prompt_field(cls, template: str) -> str:
            problem = _template_problem(template)
            if problem:
                raise ValueError(problem)
            return template

        @property
        def paired_source(self) -> str | None:
            """Expanded captions still pair with their real."""
            return self.base.paired_source

    params: Params
    fallbacks: int = 0
    """How many distinct base prompts the last `prompts()` kept as they were (empty generation)."""

    def _base_source(self) -> PromptSource:
        base = self.params.base
        return prompt_sources.get(base.type)(base, self.base_dir, self.cache_dir, self.seed)

    def check(self) -> list[tuple[str, str]]:
        problems = [(f"base.{field}", message) for field, message in self._base_source().check()]
        problem = self._model_problem()
        return [*problems, ("model", problem)] if problem else problems

    def _model_problem(self) -> str | None:
        """Why the model cannot be loaded here (not a folder nor a Hub id, or offline and not cached)."""
        from huggingface_hub import constants, try_to_load_from_cache
        from huggingface_hub.utils import HFValidationError, validate_repo_id

        model, revision = self.params.model, self.params.revision
        if is_builtin(model):
            return None  # an unknown builtin is refused when the spec is read
        local = Path(model).expanduser()
        local = local if local.is_absolute() else self.base_dir / local
        if local.is_dir():
            return None
        try:
            validate_repo_id(model)
        except HFValidationError:
            return f"{model!r} is neither a model folder ({local} is not a folder) nor a Hub id; fix the path"
        offline = constants.HF_HUB_OFFLINE or os.environ.get("HF_HUB_OFFLINE", "").upper() in {"1", "ON", "YES", "TRUE"}
        if not offline or isinstance(try_to_load_from_cache(model, "config.json", revision=revision), str):
            return None
        return (
            f"{model!r} is neither a local folder nor in the Hugging Face cache, and HF_HUB_OFFLINE=1 forbids "
            f"downloading it; download it first (`huggingface-cli download {model}`) or unset HF_HUB_OFFLINE"
        )

    def fingerprint(self) -> str:
        """What the expansions depend on besides the base text (the cache file's name).

        A builtin model's recipe hash (its config and library versions) is part of it, so a library
        upgrade does not reuse stale expansions; a Hub model is as pinned as `revision` says. The
        device is left out on purpose: sampled text can differ between CPU and GPU, and a resume on
        another machine must reuse what the first run expanded rather than plan different prompts.
        """
        settings = self.params.model_dump(exclude={"base", "device"})
        settings["seed"] = self._seed()
        if is_builtin(self.params.model):
            settings["revision"] = builtin_revision(self.params.model, "prompt")
        return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]

    def _seed(self) -> int:
        return self.params.seed if self.params.seed is not None else self.seed

    def prompts(self, captions: dict[str, list[tuple[str, str | None]]]) -> list[PromptItem]:
        bases = self._base_source().prompts(captions)
        if self.counts_only:  # plan-only: as many prompts, no language model loaded
            return [PromptItem(item.text, item.pair_key, base=item.text) for item in bases]
        distinct = list(dict.fromkeys(item.text for item in bases))
        path = layout.prompt_cache(self.cache_dir, self.fingerprint()) if self.cache_dir is not None else None
        known = _read_cache(path) if path is not None else {}
        missing = [text for text in distinct if text not in known]
        if missing:
            known.update(self._expand(missing))
            if path is not None:
                _write_cache(path, known)  # earlier entries stay: a spec edited back reuses them
        fallbacks = sum(known[text][1] for text in distinct)
        if fallbacks:
            log.warning("%d of %d base prompts expanded to nothing and are used as they are", fallbacks, len(distinct))
        self.fallbacks = fallbacks
        return [PromptItem(known[item.text][0], item.pair_key, base=item.text) for item in bases]

    def _expand(self, texts: list[str]) -> dict[str, tuple[str, bool]]:
        """Each base text's expansion and whether it fell back to the base text (empty generation)."""
        from rich.console import Console
        from rich.progress import track

        params = self.params
        lm = _load_language_model(params.model, params.revision, self.base_dir, params.device)
        console = Console(stderr=True)
        expanded: dict[str, tuple[str, bool]] = {}
        for text in track(texts, description="expanding prompts", console=console, disable=not console.is_terminal):
            prompt = params.template.format(prompt=text)
            seed = sample_seed(self._seed(), f"expand:{text}")
            generated = lm.continue_text(prompt, seed, params.max_new_tokens, params.temperature)
            cleaned = clean_expansion(generated, prompt)
            expanded[text] = (cleaned, False) if cleaned else (text, True)
        if not sys.stderr.isatty():
            fell_back = sum(fallback for _, fallback in expanded.values())
            print(
                f"expanded {len(texts)} prompts with {params.model} ({fell_back} empty, kept as given)", file=sys.stderr
            )
        return expanded


def _read_cache(path: Path) -> dict[str, tuple[str, bool]]:
    """Expansions kept by an earlier plan: base text -> (expanded text, fell back)."""
    import pyarrow.parquet as pq

    if not path.exists():
        return {}
    table = pq.read_table(path).to_pydict()
    return {
        base: (text, bool(fallback))
        for base, text, fallback in zip(table["base"], table["expanded"], table["fallback"], strict=True)
    }


def _write_cache(path: Path, expansions: dict[str, tuple[str, bool]]) -> None:
    """Write the expansions as parquet atomically (a reader never sees a partial table)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table(
        {
            "base": pa.array(list(expansions), pa.string()),
            "expanded": pa.array([text for text, _ in expansions.values()], pa.string()),
            "fallback": pa.array([fallback for _, fallback in expansions.values()], pa.bool_()),
        }
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, scratch = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(handle)
    try:
        pq.write_table(table, scratch)
        os.replace(scratch, path)
    finally:
        if os.path.exists(scratch):
            os.remove(scratch)
