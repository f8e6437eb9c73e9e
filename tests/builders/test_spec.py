"""A malformed spec exits 2, names the field and creates no output; a good one is resolved."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from forgeset.builders.spec import SpecError, load_spec, parse_spec
from forgeset.cli import app
from tests.conftest import tiny_spec, write_spec


def _with(path: str, value: Any) -> dict[str, Any]:
    """tiny_spec with one nested field replaced (path like 'generate.0.count')."""
    spec = tiny_spec()
    node: Any = spec
    *parents, last = path.split(".")
    for part in parents:
        node = node[int(part)] if part.isdigit() else node[part]
    node[int(last) if last.isdigit() else last] = value
    return spec


BAD_SPECS = [
    (_with("generate.0.count", -3), "generate[0].count: Input should be greater than 0"),
    (_with("generate.0.steps", "many"), "generate[0].steps: Input should be a valid integer"),
    (_with("image.colour", "blue"), "image.colour: unknown field (not allowed here)"),
    (_with("image.format", "gif"), "image.format: Input should be 'png' or 'jpeg'"),
    (_with("splits", {"train": 0.9, "val": 0.2, "test": 0.0}), "splits: train + val + test must be 1"),
    (_with("real.0.photos", ["mona-lisa"]), "real[0].photos: unknown photos ['mona-lisa']"),
    (_with("real.0.type", "ftp"), "real[0]: Input tag 'ftp' found using 'type' does not match"),
    ({k: v for k, v in tiny_spec().items() if k != "name"}, "name: Field required"),
]


def _model_missing() -> dict[str, Any]:
    spec = tiny_spec()
    del spec["generate"][0]["model"]
    return spec


BAD_SPECS.append((_model_missing(), "generate[0].model: Field required"))


@pytest.mark.parametrize(("data", "message"), BAD_SPECS, ids=[m.split(":")[0] for _, m in BAD_SPECS])
def test_bad_spec_exits_2_naming_the_field(tmp_path: Path, data: dict[str, Any], message: str) -> None:
    spec_path = write_spec(tmp_path, data)
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["build", "dataset", "--spec", str(spec_path), "--out", str(out)])
    assert result.exit_code == 2, result.output
    assert message in " ".join(result.output.split()), result.output
    assert not out.exists()


def test_yaml_syntax_error_and_missing_file_exit_2(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("name: [unclosed\n")
    for path in (broken, tmp_path / "absent.yaml"):
        result = CliRunner().invoke(app, ["build", "dataset", "--spec", str(path), "--out", str(tmp_path / "o")])
        assert result.exit_code == 2
        assert ("not valid YAML" in result.output) or ("cannot read the spec file" in result.output)


def test_generator_without_prompts_is_refused() -> None:
    spec = tiny_spec()
    del spec["prompts"]
    with pytest.raises(SpecError, match=r"generate\[0\] has no prompts"):
        parse_spec(spec)


def test_captions_must_name_a_real_source() -> None:
    spec = tiny_spec(prompts={"type": "captions", "source": "nowhere"})
    with pytest.raises(SpecError, match="takes captions from 'nowhere', which is not a real source"):
        parse_spec(spec)


def test_duplicate_names_are_refused() -> None:
    spec = tiny_spec()
    spec["generate"].append(dict(spec["generate"][0]))
    with pytest.raises(SpecError, match=r"repeated: \['tiny-sd'\]"):
        parse_spec(spec)


def test_resolved_spec_fills_defaults_and_hash_is_stable(tmp_path: Path) -> None:
    loaded = load_spec(write_spec(tmp_path, tiny_spec()))
    resolved = yaml.safe_load(loaded.spec.resolved_yaml())
    assert resolved["image"]["png_compression"] == 1
    assert resolved["generate"][0]["scheduler"] is None
    assert resolved["real"][0]["min_std"] == 4.0
    again = parse_spec(resolved)
    assert again.sha256() == loaded.spec.sha256()
    assert parse_spec(tiny_spec(seed=8)).sha256() != loaded.spec.sha256()
    assert loaded.base_dir == tmp_path.resolve()
