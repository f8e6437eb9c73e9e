"""Prompt expansion: seeded per base prompt, cached in OUT's state, recorded with its base prompt."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from forgeset.builders.planner import Job, plan_build
from forgeset.builders.prompts import expand
from forgeset.builders.prompts.expand import ExpandPrompts, clean_expansion
from forgeset.builders.spec import parse_spec
from forgeset.cli import app
from forgeset.manifests import layout
from tests.conftest import manifest_rows, tiny_spec, write_spec

CLASSES = ["cat", "dog", "car"]
BASES = [f"a photo of a {name}" for name in CLASSES]


def _expand(**extra: Any) -> dict[str, Any]:
    base = extra.pop("base", {"type": "templates", "classes": CLASSES})
    return {"type": "expand", "base": base, "model": "builtin:tiny-lm", "max_new_tokens": 16, **extra}


def _two_generators(count: int = 6) -> list[dict[str, Any]]:
    return [
        {"type": "text2image", "name": name, "model": "builtin:tiny-sd", "count": count, "steps": 2, "batch_size": 3}
        for name in ("first", "second")
    ]


def _fakes(spec: dict[str, Any], state_dir: Path | None = None) -> dict[str, Job]:
    plan = plan_build(parse_spec(spec), Path("."), state_dir)
    return {job.key: job for ref in plan.shards for job in plan.shard(ref).jobs if job.generator}


def _forbid_loading(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any) -> Any:
        raise AssertionError("the language model was loaded")

    monkeypatch.setattr(expand, "_load_language_model", refuse)


def test_two_plans_give_the_same_expansions_and_keep_the_base() -> None:
    spec = tiny_spec(prompts=_expand())
    first, second = _fakes(spec), _fakes(spec)
    assert len(first) == 12
    assert {key: job.prompt for key, job in first.items()} == {key: job.prompt for key, job in second.items()}
    for job in first.values():
        index = int(job.key.rsplit("-", 1)[1])
        assert job.prompt_base == BASES[index % 3]
        assert job.prompt and job.prompt != job.prompt_base and job.prompt.isprintable()
    assert len({job.prompt for job in first.values()}) == 3, "one expansion per distinct base prompt"


def test_an_expansion_depends_on_its_base_text_and_seed_only() -> None:
    def by_base(spec: dict[str, Any]) -> dict[str | None, str | None]:
        return {job.prompt_base: job.prompt for job in _fakes(spec).values()}

    all_three = by_base(tiny_spec(prompts=_expand()))
    dog_only = by_base(tiny_spec(prompts=_expand(base={"type": "templates", "classes": ["dog"]})))
    assert dog_only == {"a photo of a dog": all_three["a photo of a dog"]}
    reseeded = by_base(tiny_spec(prompts=_expand(seed=1234)))
    assert reseeded.keys() == all_three.keys() and reseeded != all_three


def test_a_second_plan_reads_the_cache_in_the_state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = tiny_spec(prompts=_expand())
    planned = _fakes(spec, tmp_path)
    source = ExpandPrompts(parse_spec(spec).prompts, Path("."), tmp_path, seed=7)
    table = pq.read_table(layout.prompt_cache(tmp_path, source.fingerprint())).to_pydict()
    assert table["base"] == BASES and table["fallback"] == [False] * 3
    assert sorted(table["expanded"]) == sorted({job.prompt for job in planned.values()})
    _forbid_loading(monkeypatch)
    again = _fakes(spec, tmp_path)
    assert {key: job.prompt for key, job in again.items()} == {key: job.prompt for key, job in planned.items()}
    with pytest.raises(AssertionError, match="the language model was loaded"):
        _fakes(spec)  # plan-only: no cache, so the model would run


def test_only_new_base_prompts_are_expanded_and_the_cache_keeps_the_old_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    expanded: list[list[str]] = []
    original = ExpandPrompts._expand

    def recorded(self: ExpandPrompts, texts: list[str]) -> dict[str, tuple[str, bool]]:
        expanded.append(texts)
        return original(self, texts)

    monkeypatch.setattr(ExpandPrompts, "_expand", recorded)
    cat = _fakes(tiny_spec(prompts=_expand(base={"type": "templates", "classes": ["cat"]})), tmp_path)
    both = _fakes(tiny_spec(prompts=_expand(base={"type": "templates", "classes": ["cat", "dog"]})), tmp_path)
    _fakes(tiny_spec(prompts=_expand(base={"type": "templates", "classes": ["dog"]})), tmp_path)
    assert expanded == [["a photo of a cat"], ["a photo of a dog"]]
    assert cat["tiny-sd-00000000"].prompt == both["tiny-sd-00000000"].prompt


def test_plan_only_writes_nothing_and_a_changed_setting_is_not_served_stale(tmp_path: Path) -> None:
    _fakes(tiny_spec(prompts=_expand()), None)
    assert not list(tmp_path.iterdir())
    _fakes(tiny_spec(prompts=_expand()), tmp_path)
    _fakes(tiny_spec(prompts=_expand(temperature=1.5)), tmp_path)
    assert len(list((tmp_path / layout.PROMPT_CACHE_DIR).glob("*.parquet"))) == 2


def test_every_generator_gets_the_same_expanded_prompt_and_the_model_runs_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    loads: list[str] = []
    load = expand._load_language_model

    def counted(model: str, *args: Any) -> Any:
        loads.append(model)
        return load(model, *args)

    monkeypatch.setattr(expand, "_load_language_model", counted)
    jobs = _fakes(tiny_spec(prompts=_expand(), generate=_two_generators()))
    assert loads == ["builtin:tiny-lm"]
    for index in range(6):
        first, second = jobs[f"first-{index:08d}"], jobs[f"second-{index:08d}"]
        assert first.prompt == second.prompt and first.prompt_base == second.prompt_base == BASES[index % 3]


def test_an_empty_generation_falls_back_to_the_base_text(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    class Silent:
        def continue_text(self, text: str, seed: int, max_new_tokens: int, temperature: float) -> str:
            return " \n\t " if "cat" in text else f"{text}  a  fine\nday "

    monkeypatch.setattr(expand, "_load_language_model", lambda *args: Silent())
    params = parse_spec(tiny_spec(prompts=_expand())).prompts
    source = ExpandPrompts(params, Path("."), tmp_path)
    items = source.prompts({})
    assert [(item.text, item.base) for item in items] == [
        ("a photo of a cat", "a photo of a cat"),
        ("a fine day", "a photo of a dog"),
        ("a fine day", "a photo of a car"),
    ]
    assert source.fallbacks == 1
    table = pq.read_table(layout.prompt_cache(tmp_path, source.fingerprint())).to_pydict()
    assert table["fallback"] == [True, False, False]


def test_clean_expansion_drops_an_echo_and_collapses_whitespace() -> None:
    assert clean_expansion("Prompt: a cat\n  on a\tmat ", "Prompt: a cat") == "on a mat"
    assert clean_expansion("  \n ", "x") == ""
    assert clean_expansion(" a  red\nfox", "Prompt: a cat") == "a red fox"


def test_a_build_records_the_expanded_and_the_base_prompt(tmp_path: Path, build_corpus: Callable[..., Path]) -> None:
    spec = tiny_spec(prompts=_expand(), generate=_two_generators(count=3))
    out = build_corpus(tmp_path, spec)
    planned = _fakes(spec)
    rows = manifest_rows(out)
    fakes = {key: row for key, row in rows.items() if row["label"] == "fake"}
    assert sorted(fakes) == sorted(planned)
    for key, row in fakes.items():
        assert (row["prompt"], row["prompt_base"]) == (planned[key].prompt, planned[key].prompt_base)
        assert row["prompt_base"] in BASES and row["prompt"] != row["prompt_base"]
    assert all(row["prompt_base"] is None for row in rows.values() if row["label"] == "real")
    assert list((out / layout.STATE_DIR / layout.PROMPT_CACHE_DIR).glob("*.parquet"))


@pytest.mark.parametrize(
    ("base", "field"),
    [
        ({"type": "templates", "classes": []}, "prompts.base.classes"),
        ({"type": "templates", "classes": ["cat"], "colour": "red"}, "prompts.base.colour"),
        (
            {"type": "expand", "base": {"type": "templates", "classes": ["cat"]}, "model": "builtin:tiny-lm"},
            "prompts.base",
        ),
    ],
)
def test_a_malformed_base_exits_2_naming_the_field(tmp_path: Path, base: dict[str, Any], field: str) -> None:
    spec_path = write_spec(tmp_path, tiny_spec(prompts=_expand(base=base)))
    result = CliRunner().invoke(app, ["build", "dataset", "--spec", str(spec_path), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2, result.output
    assert f"{field}:" in result.output
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("model", "message"),
    [
        ("someone/no-such-lm", "'someone/no-such-lm' is neither a local folder nor in the Hugging Face cache"),
        ("./no-such-folder", "'./no-such-folder' is neither a model folder"),
    ],
)
def test_a_model_that_cannot_load_exits_2_before_out_is_touched(tmp_path: Path, model: str, message: str) -> None:
    spec_path = write_spec(tmp_path, tiny_spec(prompts=_expand(model=model)))
    result = CliRunner().invoke(app, ["build", "dataset", "--spec", str(spec_path), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2, result.output
    assert f"prompts.model: {message}" in " ".join(result.output.split())
    assert not (tmp_path / "out").exists()


def test_plan_only_loads_no_language_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`--plan-only` prints the same counts without loading the expansion model or writing anything."""
    _forbid_loading(monkeypatch)
    spec = write_spec(tmp_path / "spec", tiny_spec(prompts=_expand()))
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["build", "dataset", "--spec", str(spec), "--plan-only"])
    text = " ".join(result.output.split())
    assert result.exit_code == 0, text
    assert "tiny: 28 samples" in text and "nothing was loaded or written" in text
    assert sorted(p.name for p in tmp_path.iterdir()) == ["spec"]
