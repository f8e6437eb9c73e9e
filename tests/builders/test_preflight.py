"""The preflight names, before anything is written, what a valid spec lacks on this machine."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from forgeset.builders.preflight import preflight
from forgeset.builders.spec import LoadedSpec, SpecError, load_spec, parse_spec
from tests.conftest import SPECS, tiny_spec, write_spec

HUB_MODEL = "someone/tiny-pipeline"
COMMIT = "0123456789abcdef0123456789abcdef01234567"


def _problems(folder: Path, data: dict[str, Any]) -> list[tuple[str, str]]:
    loaded = load_spec(write_spec(folder, data))
    with pytest.raises(SpecError) as caught:
        preflight(loaded)
    assert str(caught.value).startswith(f"invalid spec {folder / 'spec.yaml'}:")
    return caught.value.problems


def _stage(**fields: Any) -> dict[str, Any]:
    return {"model": "builtin:tiny-sd", "count": 2, "steps": 1, **fields}


@pytest.fixture
def hub_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An offline Hub cache holding HUB_MODEL at `main` only."""
    from huggingface_hub import constants

    cache = tmp_path / "hub"
    repo = cache / f"models--{HUB_MODEL.replace('/', '--')}"
    (repo / "snapshots" / COMMIT).mkdir(parents=True)
    (repo / "snapshots" / COMMIT / "model_index.json").write_text("{}")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(COMMIT)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return cache


def test_the_shipped_offline_specs_pass(tmp_path: Path) -> None:
    for name in ("quickstart.yaml", "forensics-mix.yaml"):
        preflight(load_spec(SPECS / name))
    preflight(LoadedSpec(parse_spec(tiny_spec()), tmp_path))


def test_unknown_builtin_model(tmp_path: Path) -> None:
    from forgeset.generators.builtin import builtin_names

    assert _problems(tmp_path, tiny_spec(generate=[_stage(model="builtin:tiny-sdxxl")])) == [
        ("generate[0].model", f"unknown builtin model 'builtin:tiny-sdxxl'; use one of {', '.join(builtin_names())}")
    ]


def test_hub_model_missing_from_the_offline_cache(tmp_path: Path, hub_cache: Path) -> None:
    spec = tiny_spec(generate=[_stage(model=HUB_MODEL), _stage(name="pinned", model=HUB_MODEL, revision="v2")])
    spec["manipulate"] = [{"type": "launder", "model": "other/vae", "subfolder": "vae", "count": 2}]
    assert _problems(tmp_path, spec) == [
        (
            "generate[1].model",
            f"'{HUB_MODEL}' at revision 'v2' is neither a local folder ({tmp_path / HUB_MODEL} does not exist) "
            "nor in the Hugging Face cache, and HF_HUB_OFFLINE=1 forbids downloading it; download it first "
            f"(`huggingface-cli download {HUB_MODEL}`) or unset HF_HUB_OFFLINE",
        ),
        (
            "manipulate[0].model",
            f"'other/vae' is neither a local folder ({tmp_path / 'other/vae'} does not exist) nor in the Hugging "
            "Face cache, and HF_HUB_OFFLINE=1 forbids downloading it; download it first "
            "(`huggingface-cli download other/vae`) or unset HF_HUB_OFFLINE",
        ),
    ]


def test_hub_models_are_not_checked_when_downloads_are_allowed(
    tmp_path: Path, hub_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    preflight(load_spec(write_spec(tmp_path, tiny_spec(generate=[_stage(model="not/cached")]))))


def test_local_model_folder_and_missing_path(tmp_path: Path) -> None:
    (tmp_path / "models" / "mine").mkdir(parents=True)
    preflight(load_spec(write_spec(tmp_path, tiny_spec(generate=[_stage(model="models/mine")]))))
    assert _problems(tmp_path, tiny_spec(generate=[_stage(model="./models/gone")])) == [
        (
            "generate[0].model",
            f"'./models/gone' is not a model folder ({tmp_path / 'models/gone'} is not a folder) nor a Hub id; "
            "fix the path",
        )
    ]


def test_missing_folder_prompt_file_and_binary_prompt_file(tmp_path: Path) -> None:
    (tmp_path / "binary.txt").write_bytes(b"\x00\x01\x02")
    spec = tiny_spec(prompts={"type": "file", "path": "absent.txt"})
    spec["real"].append({"type": "folder", "path": "photos"})
    spec["generate"].append(_stage(name="own", prompts={"type": "file", "path": "binary.txt"}))
    fix = "fix `path` (relative to the spec file's folder) or the file"
    assert _problems(tmp_path, spec) == [
        (
            "real[1].path",
            f"folder {tmp_path / 'photos'} does not exist; create it or fix `path` (relative to the spec file)",
        ),
        ("prompts.path", f"prompt file {tmp_path / 'absent.txt'} does not exist; {fix}"),
        (
            "generate[1].prompts.path",
            f"prompt file {tmp_path / 'binary.txt'} is not UTF-8 text (it holds NUL bytes: a binary file?); {fix}",
        ),
    ]


def test_sizes_that_are_not_multiples_of_8_for_diffusion(tmp_path: Path) -> None:
    spec = tiny_spec(image={"size": 36}, generate=[_stage(), _stage(name="sized", size=60)])
    assert _problems(tmp_path, spec) == [
        (
            "image.size",
            "generate[0] generates at image.size (36), which is not a multiple of 8; set generate[0].size to one "
            "(the output is then resized), or change image.size",
        ),
        ("generate[1].size", "60 is not a multiple of 8, which this model needs; use 56 or 64"),
    ]
    classical = tiny_spec(image={"size": 36}, generate=[_stage(size=32)])
    classical["manipulate"] = [{"type": "inpaint", "model": "opencv:telea", "count": 2}]
    preflight(load_spec(write_spec(tmp_path, classical)))  # OpenCV inpaints at any size


def test_cuda_without_a_gpu(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    spec = tiny_spec(generate=[_stage(device="cuda"), _stage(name="cpu-one", device="cpu")])
    [(field, message)] = _problems(tmp_path, spec)
    assert field == "generate[0].device"
    assert message.startswith(f"cuda is asked for but torch {torch.__version__} ")
    assert message.endswith("; set device: auto (or cpu)")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    preflight(load_spec(write_spec(tmp_path, spec)))


def test_missing_surrogate_checkpoint(tmp_path: Path) -> None:
    spec = tiny_spec(adversarial=[{"surrogates": ["detectors/cnn.pt"], "eps": 0.01}])
    assert _problems(tmp_path, spec) == [
        (
            "adversarial[0].surrogates[0]",
            f"checkpoint {tmp_path / 'detectors/cnn.pt'} does not exist; train one with `forgeset validate` or fix "
            "the path",
        )
    ]


def test_every_problem_is_reported_at_once_and_named_by_the_spec_file(tmp_path: Path) -> None:
    spec = tiny_spec(image={"size": 36}, generate=[_stage(model="builtin:nope")])
    spec["real"].append({"type": "folder", "path": "photos"})
    fields = [field for field, _ in _problems(tmp_path, spec)]
    assert fields == ["real[1].path", "generate[0].model", "image.size"]
    in_memory = LoadedSpec(parse_spec(spec), tmp_path)
    with pytest.raises(SpecError, match=r"^invalid spec tiny:"):
        preflight(in_memory)
