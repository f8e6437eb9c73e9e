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


def _cli_build(tmp_path: Path, spec_path: Path) -> tuple[int, str, Path]:
    """Run `forgeset build dataset`; (exit code, output on one line, OUT)."""
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["build", "dataset", "--spec", str(spec_path), "--out", str(out)])
    return result.exit_code, " ".join(result.output.split()), out


def _problems(data: Any) -> list[tuple[str, str]]:
    with pytest.raises(SpecError) as caught:
        parse_spec(data)
    return caught.value.problems


STRICT_SPECS = [
    (_with("generate.0.count", True), "generate[0].count: Input should be a valid integer, got the boolean true"),
    (
        _with("generate.0.batch_size", 4.0),
        "generate[0].batch_size: Input should be a valid integer, got the decimal 4.0",
    ),
    (_with("generate.0.size", "32"), "generate[0].size: Input should be a valid integer, got the string '32'"),
    (_with("image.size", True), "image.size: Input should be a valid integer, got the boolean true"),
    (_with("shards.size", 6.0), "shards.size: Input should be a valid integer"),
    (_with("seed", False), "seed: Input should be a valid integer"),
    (_with("generate.0.count", 10**9), "generate[0].count: Input should be less than or equal to 10000000"),
    (_with("seed", 2**63), "seed: Input should be less than or equal to 9223372036854775807"),
    (
        _with("prompts.templates", ["a photo of a {}", "a {} by {artist}"]),
        "prompts.templates: template 'a {} by {artist}' has an unknown field {artist}; the only field is '{}'",
    ),
    (
        _with("prompts.templates", ["a {} {"]),
        "prompts.templates: template 'a {} {' is not a valid template (Single '{' encountered in format string)",
    ),
    (_with("prompts.templates", ["a {}", 3]), "prompts.templates[1]: Input should be a valid string"),
]


@pytest.mark.parametrize(("data", "message"), STRICT_SPECS, ids=[m.split(": ")[0] for _, m in STRICT_SPECS])
def test_loose_numbers_huge_counts_and_bad_templates_exit_2(tmp_path: Path, data: dict[str, Any], message: str) -> None:
    code, output, out = _cli_build(tmp_path, write_spec(tmp_path, data))
    assert code == 2, output
    assert message in output, output
    assert not out.exists()


def test_count_cap_and_strictness_messages_are_exact() -> None:
    assert _problems(_with("generate.0.count", True)) == [
        ("generate[0].count", "Input should be a valid integer, got the boolean true")
    ]
    assert _problems(_with("generate.0.count", 10_000_001)) == [
        (
            "generate[0].count",
            "Input should be less than or equal to 10000000 "
            "(the most one entry makes; split larger runs over several entries)",
        )
    ]
    assert parse_spec(_with("generate.0.count", 10_000_000)).generate[0].count == 10_000_000


def test_a_wrongly_typed_value_in_a_component_is_a_spec_error() -> None:
    data = tiny_spec(manipulate=[{"type": "inpaint", "model": ["opencv:telea"], "count": 2}])
    assert _problems(data) == [("manipulate[0].model", "Input should be a valid string")]
    for extra in ({"perturb": [{"preset": ["a"]}]}, {"adversarial": [{"preset": {"a": 1}, "surrogates": ["x"]}]}):
        [(path, message)] = _problems(tiny_spec(**extra))
        assert path.endswith("].preset") and message.startswith("Input should be"), (path, message)


def test_spec_file_that_is_not_utf8_text_exits_2(tmp_path: Path) -> None:
    latin1 = tmp_path / "latin1.yaml"
    latin1.write_bytes("name: caf\xe9\n".encode("latin-1"))
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    for path, message in [
        (latin1, "the spec file is not UTF-8 text (invalid byte at offset 9)"),
        (binary, "the spec file is not UTF-8 text (it holds NUL bytes: a binary file?)"),
    ]:
        with pytest.raises(SpecError) as caught:
            load_spec(path)
        assert caught.value.problems == [("", message)]
        code, output, out = _cli_build(tmp_path, path)
        assert code == 2 and message in output, output
        assert not out.exists()


def test_spec_that_is_a_folder_or_too_large_exits_2(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="cannot read the spec file: Is a directory"):
        load_spec(tmp_path)
    huge = tmp_path / "huge.yaml"
    huge.write_bytes(b"# padding\n" * (1024 * 1024 + 1))
    with pytest.raises(SpecError) as caught:
        load_spec(huge)
    assert caught.value.problems == [("", "the spec file is larger than 10 MiB; a spec is short YAML")]


def test_deeply_nested_or_self_referring_yaml_is_a_spec_error(tmp_path: Path) -> None:
    cases = [
        ("deep-yaml.yaml", "name: " + "[" * 500 + "]" * 500 + "\n", "not valid YAML: it nests too deeply"),
        ("deep-spec.yaml", "name: x\nreal: " + "[" * 40 + "]" * 40 + "\n", "the spec nests more than 32 levels deep"),
        (
            "loop.yaml",
            "name: x\nreal: &loop [*loop]\n",
            "the spec nests more than 32 levels deep (or refers to itself)",
        ),
        ("digits.yaml", "name: x\nseed: " + "9" * 5000 + "\n", "not valid YAML: Exceeds the limit (4300 digits)"),
        ("date.yaml", "name: x\ndescription: 2024-02-30\n", "not valid YAML: day is out of range for month"),
    ]
    for name, text, message in cases:
        path = tmp_path / name
        path.write_text(text)
        with pytest.raises(SpecError) as caught:
            load_spec(path)
        [(field, problem)] = caught.value.problems
        assert field == "" and problem.startswith(message), problem
        code, output, out = _cli_build(tmp_path, path)
        assert code == 2 and message in output, output
        assert not out.exists()


def test_yaml_syntax_error_is_one_line_with_every_part_of_pyyamls_message(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("name: [unclosed\n")
    with pytest.raises(SpecError) as caught:
        load_spec(broken)
    assert caught.value.problems == [
        (
            "",
            "not valid YAML: line 2, column 1: expected ',' or ']', but got '<stream end>' "
            "(while parsing a flow sequence that starts at line 1, column 7)",
        )
    ]
    tab = tmp_path / "tab.yaml"
    tab.write_text("name: x\n\tseed: 1\n")
    with pytest.raises(SpecError) as caught:
        load_spec(tab)
    assert caught.value.problems == [
        (
            "",
            "not valid YAML: line 2, column 1: found character '\\t' that cannot start any token "
            "(while scanning for the next token)",
        )
    ]


def test_field_paths_keep_a_field_named_like_its_union_tag() -> None:
    data = tiny_spec(prompts={"type": "templates", "templates": ["a {}"], "classes": "cat"})
    assert _problems(data) == [("prompts.classes", "Input should be a valid list")]
    data = tiny_spec(prompts={"type": "templates", "templates": [["a {}"]], "classes": ["cat"]})
    assert _problems(data) == [("prompts.templates[0]", "Input should be a valid string")]
    data = _with("real.0.tile", "big")
    assert _problems(data) == [
        ("real[0].tile", "Input should be a valid integer, unable to parse string as an integer")
    ]


def test_loaded_spec_knows_its_file(tmp_path: Path) -> None:
    path = write_spec(tmp_path, tiny_spec())
    loaded = load_spec(path)
    assert loaded.path == path and loaded.source == str(path)


def test_cli_keeps_brackets_of_yaml_and_template_errors(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("name: [unclosed\n")
    code, output, out = _cli_build(tmp_path, broken)
    assert code == 2 and not out.exists()
    assert "not valid YAML: line 2, column 1: expected ',' or ']', but got '<stream end>'" in output, output
    spec = write_spec(tmp_path, _with("prompts.templates", ["[red]a {} {x}"]))
    code, output, out = _cli_build(tmp_path, spec)
    assert code == 2 and not out.exists()
    assert "prompts.templates: template '[red]a {} {x}' has an unknown field {x}" in output, output
