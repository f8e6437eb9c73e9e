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
