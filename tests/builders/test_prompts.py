"""Prompt sources: templates, a prompt file, and captions, each in a stable order."""

from __future__ import annotations

from pathlib import Path

import pytest

from forgeset.builders.prompts.captions import CaptionPrompts
from forgeset.builders.prompts.file import FilePrompts
from forgeset.builders.prompts.templates import TemplatePrompts


def test_templates_cover_every_class_and_template() -> None:
    params = TemplatePrompts.Params(templates=["a photo of a {}", "a painting of a {}"], classes=["cat", "dog"])
    texts = [p.text for p in TemplatePrompts(params, Path(".")).prompts({})]
    assert texts == ["a photo of a cat", "a painting of a cat", "a photo of a dog", "a painting of a dog"]


def test_template_without_a_slot_is_refused() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        TemplatePrompts.Params(templates=["a photo"], classes=["cat"])


def test_prompt_file_skips_blank_lines_and_comments(tmp_path: Path) -> None:
    (tmp_path / "prompts.txt").write_text("# header\na red fox\n\n  a blue whale  \n", encoding="utf-8")
    texts = [p.text for p in FilePrompts(FilePrompts.Params(path="prompts.txt"), tmp_path).prompts({})]
    assert texts == ["a red fox", "a blue whale"]
    (tmp_path / "empty.txt").write_text("# nothing\n")
    with pytest.raises(ValueError, match="holds no prompts"):
        FilePrompts(FilePrompts.Params(path="empty.txt"), tmp_path).prompts({})


def test_captions_keep_their_real_key_and_skip_missing_ones() -> None:
    source = CaptionPrompts(CaptionPrompts.Params(source="coco"), Path("."))
    items = source.prompts({"coco": [("coco-0", "a bus"), ("coco-1", None), ("coco-2", "two cats")]})
    assert [(p.text, p.pair_key) for p in items] == [("a bus", "coco-0"), ("two cats", "coco-2")]


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("a {} by {artist}", "template 'a {} by {artist}' has an unknown field {artist}; the only field is '{}'"),
        ("a {0}", "template 'a {0}' has an unknown field {0}; the only field is '{}' (the class name)"),
        ("a {.upper}", "template 'a {.upper}' has an unknown field {.upper}"),
        ("a {} {", "template 'a {} {' is not a valid template (Single '{' encountered in format string); write"),
        ("a {} }", "template 'a {} }' is not a valid template (Single '}' encountered in format string); write"),
        ("a {!r}", "template 'a {!r}' formats its field with '!r'; write a plain '{}'"),
        ("a {:>9}", "template 'a {:>9}' formats its field with ':>9'; write a plain '{}'"),
        ("a {} {}", "template 'a {} {}' must contain exactly one '{}' (the class name), found 2"),
        ("a {{}}", "template 'a {{}}' must contain exactly one '{}' (the class name), found 0"),
    ],
)
def test_bad_templates_are_refused_when_the_spec_is_loaded(template: str, message: str) -> None:
    with pytest.raises(ValueError) as caught:
        TemplatePrompts.Params(templates=[template], classes=["cat"])
    assert message in str(caught.value)


def test_literal_braces_are_allowed_in_templates() -> None:
    params = TemplatePrompts.Params(templates=["{{{}}} in braces"], classes=["cat"])
    assert [p.text for p in TemplatePrompts(params, Path(".")).prompts({})] == ["{cat} in braces"]


def test_templates_times_classes_is_capped() -> None:
    with pytest.raises(ValueError, match="templates x classes makes 1000002 prompts; at most 1000000 are allowed"):
        TemplatePrompts.Params(templates=["a {}", "the {}"], classes=[f"c{i}" for i in range(500_001)])


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("un café\n".encode("latin-1"), "is not UTF-8 text (invalid byte at offset 6)"),
        (b"\x89PNG\r\n\x1a\n\x00\x00", "is not UTF-8 text (it holds NUL bytes: a binary file?)"),
    ],
)
def test_binary_or_non_utf8_prompt_file_names_the_file(tmp_path: Path, content: bytes, message: str) -> None:
    (tmp_path / "prompts.txt").write_bytes(content)
    source = FilePrompts(FilePrompts.Params(path="prompts.txt"), tmp_path)
    with pytest.raises(ValueError) as caught:
        source.prompts({})
    assert str(caught.value) == f"prompt file {tmp_path / 'prompts.txt'} {message}"
    fix = "fix `path` (relative to the spec file's folder) or the file"
    assert source.check() == [("path", f"prompt file {tmp_path / 'prompts.txt'} {message}; {fix}")]


def test_missing_or_oversized_prompt_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = FilePrompts(FilePrompts.Params(path="absent.txt"), tmp_path)
    with pytest.raises(FileNotFoundError, match=f"prompt file {tmp_path / 'absent.txt'} does not exist$"):
        source.prompts({})
    assert [field for field, _ in source.check()] == ["path"]
    monkeypatch.setattr("forgeset.builders.prompts.file.MAX_PROMPT_FILE_BYTES", 16)
    (tmp_path / "long.txt").write_text("a prompt that is long\n")
    with pytest.raises(ValueError, match=r"long\.txt is larger than 16 bytes$"):
        FilePrompts(FilePrompts.Params(path="long.txt"), tmp_path).prompts({})
    (tmp_path / "ok.txt").write_text("fine\n")
    assert FilePrompts(FilePrompts.Params(path="ok.txt"), tmp_path).check() == []
