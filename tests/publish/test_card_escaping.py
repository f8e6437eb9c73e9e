"""The dataset card escapes every corpus and spec string, documents every field and refuses malformed metrics;
repo ids are checked before anything is written."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
import yaml

from forgeset.manifests.corpus import Corpus, CorpusError
from forgeset.manifests.index import SELF_HASH_FIELD, file_entry, index_content_sha256
from forgeset.manifests.layout import RESOLVED_SPEC_NAME, Layout
from forgeset.manifests.schema import MANIFEST_SCHEMA
from forgeset.publish.card import FIELD_DOCS, json_text, license_id, md_cell, md_code, md_text, render_card
from forgeset.publish.hub import stage_release, validate_repo_id
from tests.conftest import rehash_index

REPO_ID = "forensics/tiny-v1.2"
SCRIPT = "<script>alert(1)</script>"
IMG = "<img src=x onerror=alert(1)>"
HOSTILE = f"{SCRIPT} {IMG} | [link](javascript:alert(1)) ![i](http://e/x.png) `code` *b* _i_ &lt; $x$"
DESCRIPTION = f"{HOSTILE}\n```\n{SCRIPT}\n```\n---\n# heading\n- item\n1. one"
FIGURES = {"n_real": 3, "n_fake": 4, "auc": 0.5, "auc_ci": [0.4, 0.6], "ap": 0.25, "accuracy": 0.75, "few": True}
METRICS = {
    "detectors": {
        f"cnn{SCRIPT}": {"note": f"```\n{SCRIPT}\n```", "test": FIGURES, "per_generator": {f"g|{IMG}": FIGURES}}
    }
}


def _rewrite_spec(out: Path, spec: dict[str, Any]) -> None:
    """Replace spec.resolved.yaml and re-vouch for it in index.json (as a build would have)."""
    paths = Layout(out)
    paths.resolved_spec.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    index = json.loads(paths.index.read_text())
    index["files"][RESOLVED_SPEC_NAME] = file_entry(paths.resolved_spec)
    index[SELF_HASH_FIELD] = index_content_sha256(index)
    paths.index.write_text(json.dumps(index, indent=2) + "\n")


@pytest.fixture(scope="module")
def hostile_card(tiny_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The card of a copy of the tiny corpus whose spec and metrics hold HTML, Markdown and fences."""
    out = tmp_path_factory.mktemp("hostile") / "out"
    shutil.copytree(tiny_corpus, out)
    spec = yaml.safe_load(Layout(out).resolved_spec.read_text())
    spec["description"] = DESCRIPTION
    spec["license"] = f"mit\n---\n{SCRIPT}"
    stage = spec["generate"][0]
    stage.update(name="tiny-sd", model=f"{IMG}|x")
    _rewrite_spec(out, spec)
    table = pq.read_table(Layout(out).manifest)  # what the generator recorded: revision and license per sample
    made = pc.equal(table["generator"], "tiny-sd")
    for column, value in (("revision", f"main|{SCRIPT}\n|row"), ("license", f"{IMG}`")):
        hostile = pc.if_else(made, pa.scalar(value), table[column])
        table = table.set_column(table.schema.get_field_index(column), column, hostile)
    pq.write_table(table, Layout(out).manifest)
    rehash_index(out)
    Layout(out).metrics.parent.mkdir(parents=True, exist_ok=True)
    Layout(out).metrics.write_text(json.dumps(METRICS))
    return render_card(Corpus.open(out), REPO_ID, {"xs": 1})


def _outside_fences(text: str) -> str:
    """The card without its fenced code blocks (whose content is never rendered as Markdown or HTML)."""
    return re.sub(r"^```[^\n]*\n.*?^```$", "", text, flags=re.MULTILINE | re.DOTALL)


def _pipes(row: str) -> int:
    """Cell separators of a table row: pipes not escaped by a backslash."""
    return len(re.findall(r"(?<!\\)\|", row.replace("\\\\", "")))


def _table(body: str, heading: str) -> list[str]:
    section = body.split(f"## {heading}\n\n", 1)[1]
    return section.split("\n\n", 1)[0].splitlines()


def test_running_text_and_cells_escape_html_and_markdown() -> None:
    assert md_text("<b>[x](y)|`z`</b> & _i_") == "&lt;b&gt;\\[x\\]\\(y\\)\\|\\`z\\`&lt;/b&gt; &amp; \\_i\\_"
    assert md_text("a\\*b!") == "a\\\\\\*b\\!"
    assert md_text("---\n# h\n- i\n+ j\n2. k\n3) l\n===") == "\\---\n\\# h\n\\- i\n\\+ j\n2\\. k\n3\\) l\n\\==="
    assert md_cell("a|b\nc\r\nd") == "a\\|b c d"
    assert md_cell(None) == "" and md_cell(12) == "12" and md_cell(0.75) == "0.75" and md_cell("# a") == "\\# a"
    assert md_code("builtin:tiny-sd") == "`builtin:tiny-sd`"
    assert md_code("x`|<y>") == "x\\`\\|&lt;y&gt;"
    assert json_text({"k": "```<é>&"}) == '{"k": "\\u0060\\u0060\\u0060\\u003c\\u00e9\\u003e\\u0026"}'


def test_front_matter_license_is_a_plain_id() -> None:
    assert license_id("cc-by-4.0") == "cc-by-4.0" and license_id("apache-2.0") == "apache-2.0"
    assert license_id("MIT") == "other" and license_id("mit\n---") == "other" and license_id("-x") == "other"
    assert license_id(None) == "other"


def test_card_holds_no_raw_html(hostile_card: str) -> None:
    _, front, body = hostile_card.split("---\n", 2)
    meta = yaml.safe_load(front)
    assert meta["license"] == "other" and meta["pretty_name"] == "tiny"
    assert "<" not in body and ">" not in body  # not even inside code: JSON strings carry \u003c
    text = _outside_fences(body)
    assert "&lt;script&gt;alert\\(1\\)&lt;/script&gt;" in text
    assert "&lt;img src=x onerror=alert\\(1\\)&gt;" in text
    assert "](" not in text and "![" not in text and "``" not in text


def test_description_is_escaped_running_text(hostile_card: str) -> None:
    body = hostile_card.split("---\n", 2)[2]
    assert md_text(DESCRIPTION) in body
    assert (
        "\\`\\`\\`\n&lt;script&gt;alert\\(1\\)&lt;/script&gt;\n\\`\\`\\`\n\\---\n\\# heading\n\\- item\n1\\. one"
        in body
    )


def test_table_rows_keep_their_columns(hostile_card: str) -> None:
    body = hostile_card.split("---\n", 2)[2]
    generators = _table(body, "Generators and manipulations")
    assert len(generators) == 3  # header, rule, the one stage: the revision's newline did not add a row
    assert {_pipes(row) for row in generators} == {7}
    assert generators[2] == (
        "| `tiny-sd` | text2image | &lt;img src=x onerror=alert\\(1\\)&gt;\\|x "
        "| main\\|&lt;script&gt;alert\\(1\\)&lt;/script&gt; \\|row | &lt;img src=x onerror=alert\\(1\\)&gt;\\` | 12 |"
    )
    splits = _table(body, "Splits")
    assert {_pipes(row) for row in splits} == {5}


def test_metrics_are_escaped_summary_tables_not_raw_json(hostile_card: str) -> None:
    body = hostile_card.split("---\n", 2)[2]
    section = body.split("## Baseline detectors\n\n", 1)[1].split("\n## ", 1)[0]
    assert "```" not in section and "note" not in section
    name = "cnn&lt;script&gt;alert\\(1\\)&lt;/script&gt;"
    assert f"| {name} | test | 3 | 4 | 0.5000 (0.4000-0.6000) (few) | 0.2500 | 0.7500 |" in section.splitlines()
    generator = "g\\|&lt;img src=x onerror=alert\\(1\\)&gt;"
    assert f"| {generator} | {name} | 3 | 4 | 0.5000 (0.4000-0.6000) (few) | 0.7500 |" in section.splitlines()


def test_code_snippets_quote_the_repo_id_with_repr(hostile_card: str) -> None:
    assert f"ds = datasets.load_dataset({REPO_ID!r}, split='train')" in hostile_card
    url = f"https://huggingface.co/datasets/{REPO_ID}/resolve/main/data/train/00000.tar"
    assert f"url = {url!r}\n" in hostile_card


BAD_IDS = [
    'org/x"); import os; os.system("id")',
    "../x",
    "a/b/c",
    "/abs",
    "org/x y",
    "org",
    "org/",
    "-org/x",
    "org/x.",
    "org/a--b",
    "org/a..b",
    "org/x\n",
    "org/" + "x" * 97,
]


@pytest.mark.parametrize("repo_id", BAD_IDS)
def test_validate_repo_id_refuses(repo_id: str) -> None:
    with pytest.raises(ValueError) as caught:
        validate_repo_id(repo_id)
    message = str(caught.value)
    assert "\n" not in message and message.startswith(f"invalid Hub dataset repo id {repo_id!r}: ")


@pytest.mark.parametrize("repo_id", ["forensics/tiny-v1.2", "a/b", "Org_1/x.y-z", "o/" + "x" * 96])
def test_validate_repo_id_accepts(repo_id: str) -> None:
    assert validate_repo_id(repo_id) == repo_id


def test_stage_release_with_a_bad_repo_id_writes_nothing(tiny_corpus: Path, tmp_path: Path) -> None:
    before = sorted((p.relative_to(tiny_corpus), p.stat().st_mtime_ns) for p in tiny_corpus.rglob("*"))
    folder = tmp_path / "release"
    with pytest.raises(ValueError, match="invalid Hub dataset repo id"):
        stage_release(tiny_corpus, folder, 'org/x"); import os; os.system("id")', {"xs": 1})
    assert not folder.exists()
    assert sorted((p.relative_to(tiny_corpus), p.stat().st_mtime_ns) for p in tiny_corpus.rglob("*")) == before
    with pytest.raises(ValueError, match="invalid Hub dataset repo id"):  # refused before the corpus is read
        stage_release(tmp_path / "no-corpus", folder, "../x", {})


def test_render_card_refuses_a_bad_repo_id(tiny_corpus: Path) -> None:
    with pytest.raises(ValueError, match="invalid Hub dataset repo id"):
        render_card(Corpus.open(tiny_corpus), "a/b/c", {})


def test_rendered_card_holds_only_the_cards_own_markup(hostile_card: str) -> None:
    markdown_it = pytest.importorskip("markdown_it")  # installed with rich; a CommonMark renderer with GFM tables
    body = hostile_card.split("---\n", 2)[2]
    page = markdown_it.MarkdownIt("commonmark", {"html": True}).enable(["table", "strikethrough"]).render(body)
    tags = set(re.findall(r"<([a-z][a-z0-9]*)", page))
    assert tags == {"h1", "h2", "p", "ul", "li", "code", "pre", "table", "thead", "tbody", "tr", "th", "td"}
    assert "<td>main|&lt;script&gt;alert(1)&lt;/script&gt; |row</td>" in page
    assert f"<p>{SCRIPT.replace('<', '&lt;').replace('>', '&gt;')} " in page


def test_unreadable_metrics_are_refused_not_pasted(tiny_corpus: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    shutil.copytree(tiny_corpus, out)
    Layout(out).metrics.parent.mkdir(parents=True, exist_ok=True)
    Layout(out).metrics.write_text(f"```\n{SCRIPT}")
    with pytest.raises(CorpusError, match=r"metrics\.json: not readable JSON"):
        render_card(Corpus.open(out), REPO_ID, {})


@pytest.mark.parametrize(
    ("detectors", "field", "got"),
    [
        ({"cnn": {"test": FIGURES, "per_generator": [FIGURES]}}, "detectors.cnn.per_generator", "list"),
        ({"cnn": {"test": FIGURES, "per_generator": {"g": 0.5}}}, "detectors.cnn.per_generator.g", "float"),
        ({"cnn": {"test": [0.5]}}, "detectors.cnn.test", "list"),
        ({"cnn": "trained"}, "detectors.cnn", "str"),
        ([FIGURES], "detectors", "list"),
    ],
)
def test_malformed_metrics_are_refused_naming_file_and_field(
    tiny_corpus: Path, tmp_path: Path, detectors: Any, field: str, got: str
) -> None:
    out = tmp_path / "out"
    shutil.copytree(tiny_corpus, out)
    Layout(out).metrics.parent.mkdir(parents=True, exist_ok=True)
    Layout(out).metrics.write_text(json.dumps({"detectors": detectors}))
    with pytest.raises(CorpusError) as refused:
        render_card(Corpus.open(out), REPO_ID, {})
    assert str(refused.value) == f"{Layout(out).metrics}: field {field}: not a mapping (got {got})"


def test_field_docs_cover_every_manifest_field_but_shard() -> None:
    assert set(FIELD_DOCS) == set(MANIFEST_SCHEMA.names) - {"shard"}


def test_card_describes_stratified_splits_and_min_shards_per_split(tiny_corpus: Path) -> None:
    spec = yaml.safe_load(Layout(tiny_corpus).resolved_spec.read_text())
    body = " ".join(render_card(Corpus.open(tiny_corpus), REPO_ID, {}).split())
    assert "from a hash of the spec seed" not in body
    assert (
        f"They are stratified, a pure function of the spec (seed {spec['seed']}): the groups of each stratum"
    ) in body
    assert f"at least `shards.min_per_split` ({spec['shards']['min_per_split']}) shards of nearly equal size" in body
