"""Checks a build makes before it writes anything, so that a doomed build fails fast with exit 2.

A valid spec can still name things this machine lacks: a folder or prompt file that is not there,
a builtin model that does not exist, a Hub model that is not in the local cache while
HF_HUB_OFFLINE=1, a CUDA device without a GPU, a generation size the model cannot make. Each of
these would otherwise surface on a worker, after OUT was created. `preflight` finds them all at
once and raises one SpecError naming each field, with what to do about it.

Nothing here names a component type: sources and prompt sources check themselves (`check()`),
and stages are judged by their traits (`size_multiple`) and their common fields.
"""

from __future__ import annotations

import os
from pathlib import Path

from forgeset.builders.prompts import PromptSourceParams, prompt_sources
from forgeset.builders.sources import real_sources
from forgeset.builders.spec import LoadedSpec, SpecError
from forgeset.generators.base import GeneratorParams, stage_class
from forgeset.generators.builtin import builtin_names, is_builtin

Problem = tuple[str, str]
# Files one of which a cached diffusers model (pipeline or single component) has at its root.
_MODEL_FILES = ("model_index.json", "config.json")


def preflight(loaded: LoadedSpec, check_models: bool = True) -> None:
    """Raise SpecError(spec, [(field path, message)]) for every problem a build would meet later.

    `check_models=False` (for `--plan-only`) skips what only loading needs: model availability
    and the CUDA device.
    """
    spec, base_dir = loaded.spec, loaded.base_dir
    problems: list[Problem] = []
    for index, source in enumerate(spec.real):
        checked = real_sources.get(source.type)(source, base_dir).check()
        problems += [(f"real[{index}].{field}", message) for field, message in checked]
    prompt_fields: list[tuple[str, PromptSourceParams]] = [("prompts", spec.prompts)] if spec.prompts else []
    prompt_fields += [(f"generate[{i}].prompts", g.prompts) for i, g in enumerate(spec.generate) if g.prompts]
    for where, params in prompt_fields:
        checked = prompt_sources.get(params.type)(params, base_dir).check()
        problems += [(f"{where}.{field}", message) for field, message in checked]
    stages = [(f"generate[{i}]", g, True) for i, g in enumerate(spec.generate)]
    stages += [(f"manipulate[{i}]", m, False) for i, m in enumerate(spec.manipulate)]
    for where, params, generates in stages:
        problem = _model_problem(params, base_dir) if check_models else None
        if problem:
            problems.append((f"{where}.model", problem))
        problems += _size_problems(where, params, spec.image.size, generates)
    if check_models and any(params.device == "cuda" for _, params, _ in stages) and not _cuda_available():
        problems += [
            (f"{where}.device", f"cuda is asked for but {_no_cuda_reason()}; set device: auto (or cpu)")
            for where, params, _ in stages
            if params.device == "cuda"
        ]
    if check_models:
        problems += _quality_problems(loaded)
    for index, attack in enumerate(spec.adversarial):
        for number, surrogate in enumerate(attack.surrogates):
            path = Path(surrogate) if Path(surrogate).is_absolute() else base_dir / surrogate
            if not path.exists():
                problems.append(
                    (
                        f"adversarial[{index}].surrogates[{number}]",
                        f"checkpoint {path} does not exist; train one with `forgeset validate` or fix the path",
                    )
                )
    if problems:
        raise SpecError(loaded.source, problems)


def _quality_problems(loaded: LoadedSpec) -> list[Problem]:
    """Quality checks' CLIP models and aesthetic heads that cannot load: `builtin:` names of the quality
    builtins (tiny-clip, tiny-aesthetic), folders, or Hub ids cached when offline."""
    from forgeset.core.builtin_models import builtin_names as all_builtins
    from forgeset.quality import builtin_models  # noqa: F401 - registers the quality builtins

    known = all_builtins("quality")
    problems = []
    for index, check in enumerate(loaded.spec.quality):
        for field in ("model", "head"):
            model = getattr(check.scorer, field, None)
            if model is None:
                continue
            if is_builtin(model) and model not in known:
                problems.append(
                    (f"quality[{index}].{field}", f"unknown builtin model {model!r}; use one of {', '.join(known)}")
                )
            elif not is_builtin(model):
                revision = getattr(check.scorer, "revision", None)
                problem = _location_problem(model, revision, None, loaded.base_dir)
                if problem:
                    problems.append((f"quality[{index}].{field}", problem))
    return problems


def _model_problem(params: GeneratorParams, base_dir: Path) -> str | None:
    """Why `params.model` cannot be loaded on this machine, or None (it may still fail to load)."""
    model = params.model
    if is_builtin(model):
        if model in builtin_names():
            return None
        return f"unknown builtin model {model!r}; use one of {', '.join(builtin_names())}"
    return _location_problem(model, params.revision, getattr(params, "subfolder", None), base_dir)


def _location_problem(model: str, revision: str | None, subfolder: str | None, base_dir: Path) -> str | None:
    """Why a model given as a folder or Hub id cannot be loaded here, or None."""
    if ":" in model:
        return None  # a scheme its stage resolves itself (a classical method, not a model to download)
    local = Path(model).expanduser()
    local = local if local.is_absolute() else base_dir / local
    if local.is_dir():
        return None
    if local.exists() or not _is_hub_id(model):
        return f"{model!r} is not a model folder ({local} is not a folder) nor a Hub id; fix the path"
    if not _hub_offline() or _in_hub_cache(model, revision, subfolder):
        return None
    at = f" at revision {revision!r}" if revision else ""
    return (
        f"{model!r}{at} is neither a local folder ({local} does not exist) nor in the Hugging Face cache, "
        f"and HF_HUB_OFFLINE=1 forbids downloading it; download it first (`huggingface-cli download {model}`) "
        "or unset HF_HUB_OFFLINE"
    )


def _is_hub_id(model: str) -> bool:
    """Whether `model` is spelled like a Hub repo id (`name` or `owner/name`)."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(model)
    except HFValidationError:
        return False
    return True


def _hub_offline() -> bool:
    """Whether huggingface_hub may not download: HF_HUB_OFFLINE now, or when it was imported."""
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE) or os.environ.get("HF_HUB_OFFLINE", "").upper() in {"1", "ON", "YES", "TRUE"}


def _in_hub_cache(model: str, revision: str | None, subfolder: str | None) -> bool:
    """Whether the local Hub cache holds `model` at `revision` (its model_index.json or config.json)."""
    from huggingface_hub import try_to_load_from_cache

    names = [*_MODEL_FILES, *([f"{subfolder}/config.json"] if subfolder else [])]
    return any(isinstance(try_to_load_from_cache(model, name, revision=revision), str) for name in names)


def _size_problems(where: str, params: GeneratorParams, image_size: int, generates: bool) -> list[Problem]:
    """A generation size the stage's model cannot make (diffusion models need multiples of 8)."""
    multiple = stage_class(params).size_multiple(params)
    if params.size is not None and params.size % multiple:
        return [(f"{where}.size", f"{params.size} is not a multiple of {multiple}, {_fix(params.size, multiple)}")]
    if params.size is None and generates and image_size % multiple:
        return [
            (
                "image.size",
                f"{where} generates at image.size ({image_size}), which is not a multiple of {multiple}; "
                f"set {where}.size to one (the output is then resized), or change image.size",
            )
        ]
    return []


def _fix(size: int, multiple: int) -> str:
    """What to write instead of a size that is not a multiple of `multiple`."""
    below = size - size % multiple
    options = [value for value in (below, below + multiple) if value >= multiple]
    return f"which this model needs; use {' or '.join(str(v) for v in options)}"


def _cuda_available() -> bool:
    import torch

    return bool(torch.cuda.is_available())


def _no_cuda_reason() -> str:
    import torch

    build = f"torch {torch.__version__}"
    return f"{build} sees no CUDA GPU" if torch.version.cuda else f"{build} is a CPU-only build"
