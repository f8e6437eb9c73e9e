"""`forgeset publish`: a dry-run folder that loads offline, and an upload to a stand-in Hub."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
import webdataset as wds
import yaml
from typer.testing import CliRunner

from forgeset.cli import app
from forgeset.manifests.layout import Layout
from forgeset.manifests.schema import MANIFEST_SCHEMA
from tests.conftest import manifest_rows, tiny_spec
from tests.fake_hub import FakeHub

CANARY = "hf_CANARYtokenTHATmustNEVERbeSEEN0123456789"


@pytest.fixture(scope="module")
def dry_run(tiny_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("release") / "release"
    result = CliRunner().invoke(
        app, ["publish", str(tiny_corpus), "--repo-id", "forensics/tiny", "--dry-run", str(folder), "--tier", "xs=1"]
    )
    assert result.exit_code == 0, result.output
    return folder


def test_dry_run_folder_loads_offline_for_every_config(dry_run: Path, tiny_corpus: Path, tmp_path: Path) -> None:
    import datasets

    rows = manifest_rows(tiny_corpus)
    full = datasets.load_dataset(str(dry_run), cache_dir=str(tmp_path / "a"))
    assert {split: len(d) for split, d in full.items()} == dict(Counter(r["split"] for r in rows.values()))
    for split, dataset in full.items():
        assert dataset.features["cls"] == datasets.ClassLabel(names=["real", "fake"])  # declared, not int64
        assert isinstance(dataset.features["png"], datasets.Image)
        for example in dataset:
            row = rows[example["__key__"]]
            assert row["split"] == split and example["cls"] == (row["label"] == "fake")
            assert example["json"]["generator"] == (row["generator"] or "") and example["json"]["seed"] == (
                -1 if row["seed"] is None else row["seed"]
            )
    xs = datasets.load_dataset(str(dry_run), name="xs", cache_dir=str(tmp_path / "b"))
    index = json.loads((tiny_corpus / "index.json").read_text())
    first = {s["split"]: s["count"] for s in reversed(index["shards"]) if s["path"].endswith("00000.tar")}
    assert {split: len(d) for split, d in xs.items()} == first


def test_dry_run_shards_read_with_webdataset_and_equal_the_originals(dry_run: Path, tiny_corpus: Path) -> None:
    tars = sorted(dry_run.glob("data/*/*.tar"))
    assert [t.relative_to(dry_run / "data") for t in tars] == sorted(
        t.relative_to(tiny_corpus) for t in tiny_corpus.glob("*/*.tar")
    )
    keys = [s["__key__"] for s in wds.WebDataset([str(t) for t in tars], shardshuffle=False, empty_check=False)]
    assert sorted(keys) == sorted(manifest_rows(tiny_corpus))
    for tar in tars:
        original = tiny_corpus / tar.relative_to(dry_run / "data")
        assert hashlib.sha256(tar.read_bytes()).digest() == hashlib.sha256(original.read_bytes()).digest()


def test_card_front_matter_and_body(dry_run: Path, tiny_corpus: Path) -> None:
    text = (dry_run / "README.md").read_text()
    _, front, body = text.split("---", 2)
    meta = yaml.safe_load(front)
    assert meta["license"] == "other" and meta["pretty_name"] == "tiny" and meta["license_name"] == "mixed"
    assert meta["license_link"] == "https://huggingface.co/datasets/forensics/tiny/blob/main/README.md#licenses"
    assert meta["task_categories"] == ["image-classification"] and meta["size_categories"] == ["n<1K"]
    assert [c["config_name"] for c in meta["configs"]] == ["default", "xs"]
    assert all(
        p.startswith("data/") and p.endswith(".tar")
        for c in meta["configs"]
        for f in c["data_files"]
        for p in f["path"]
    )
    revisions = {r["revision"] for r in manifest_rows(tiny_corpus).values() if r["generator"] == "tiny-sd"}
    assert len(revisions) == 1 and None not in revisions
    assert (
        f"| `tiny-sd` | text2image | `builtin:tiny-sd` | `{revisions.pop()}` | apache-2.0 (builtin model, random "
        "weights) | 12 |" in body
    )
    for heading in ("Structure of a sample", "How the splits are made", "Degraded copies", "Licenses", "Citation"):
        assert f"\n## {heading}\n" in body
    assert "\n## Limitations and known biases\n\n- Class balance: 16 real and 12 fake samples.\n" in body
    for field in MANIFEST_SCHEMA.names[:-1]:  # every KEY.json field is described (all but `shard`)
        assert f"| `{field}` |" in body
    assert "32x32 px" in body
    assert f"datasets.load_dataset({'forensics/tiny'!r}" in body
    assert {"manifest.parquet", "index.json", "spec.resolved.yaml", "croissant.json"} <= {
        p.name for p in dry_run.iterdir()
    }


def test_card_loads_with_huggingface_hub_and_declares_features_for_every_config(dry_run: Path) -> None:
    from datasets.info import DatasetInfosDict
    from huggingface_hub import DatasetCard

    card = DatasetCard.load(dry_run / "README.md")
    assert card.data.license == "other" and card.data.license_name == "mixed"
    assert [c["config_name"] for c in card.data.configs] == ["default", "xs"]
    infos = DatasetInfosDict.from_dataset_card_data(card.data)
    assert sorted(infos) == ["default", "xs"]
    assert all(info.features["cls"].names == ["real", "fake"] for info in infos.values())


def test_release_croissant_reads_the_manifest_with_mlcroissant(dry_run: Path, tiny_corpus: Path) -> None:
    import mlcroissant as mlc

    dataset = mlc.Dataset(jsonld=str(dry_run / "croissant.json"))
    keys = sorted(record["samples/key"].decode() for record in dataset.records("samples"))
    assert keys == sorted(manifest_rows(tiny_corpus))
    shards = [f["contentUrl"] for f in dataset.metadata.to_json()["distribution"] if f["contentUrl"].endswith(".tar")]
    assert shards and all((dry_run / url).is_file() and url.startswith("data/") for url in shards)


def _publish(out: Path, hub: FakeHub, *extra: str) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "HF_ENDPOINT": hub.url,
        "HF_TOKEN": CANARY,
        "HF_HUB_OFFLINE": "0",
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "HF_HUB_DISABLE_XET": "1",
    }
    command = [
        sys.executable,
        "-m",
        "forgeset.cli",
        "publish",
        str(out),
        "--repo-id",
        "forensics/tiny",
        "--batch",
        "2",
        *extra,
    ]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)


def _no_canary_under(folder: Path) -> None:
    for path in folder.rglob("*"):
        if path.is_file():
            assert CANARY.encode() not in path.read_bytes(), path


def test_upload_commits_every_file_and_never_shows_the_token(tiny_corpus: Path, tmp_path: Path) -> None:
    import shutil

    out = tmp_path / "corpus"
    shutil.copytree(tiny_corpus, out)
    with FakeHub() as hub:
        result = _publish(out, hub)
        assert result.returncode == 0, result.stderr
        staged = Layout(out).publish_dir
        expected = {p.relative_to(staged).as_posix(): p.read_bytes() for p in staged.rglob("*") if p.is_file()}
        assert hub.repos["forensics/tiny"] == expected
        assert "README.md" in hub.commits[-1][1]  # the card lands last: a repo with a card is complete
        assert any(f"Bearer {CANARY}" in headers for headers in hub.headers_seen)  # the token was used...
    assert CANARY not in result.stdout + result.stderr  # ...and never shown
    _no_canary_under(out)


def test_interrupted_upload_resumes_without_resending_finished_files(tiny_corpus: Path, tmp_path: Path) -> None:
    import shutil

    out = tmp_path / "corpus"
    shutil.copytree(tiny_corpus, out)
    with FakeHub() as hub:
        hub.fail_commits = {3}
        first = _publish(out, hub)
        assert first.returncode == 1
        assert "run the same command again to resume" in " ".join(first.stderr.split())
        commits_before = len(hub.commits)
        assert commits_before == 2  # the third commit failed
        sent_before = {path for _, paths in hub.commits for path in paths}
        assert sent_before and all(path.startswith("data/") for path in sent_before)
        second = _publish(out, hub)
        assert second.returncode == 0, second.stderr
        resent = {path for _, paths in hub.commits[commits_before:] for path in paths}
        assert not resent & sent_before
        staged = Layout(out).publish_dir
        assert set(hub.repos["forensics/tiny"]) == {
            p.relative_to(staged).as_posix() for p in staged.rglob("*") if p.is_file()
        }
    assert CANARY not in first.stderr + second.stderr + first.stdout + second.stdout


def test_publish_without_a_token_is_refused(tiny_corpus: Path, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "HF_TOKEN"}
    env.update(HF_HOME=str(tmp_path / "hf"), HF_HUB_OFFLINE="0")
    result = subprocess.run(
        [sys.executable, "-m", "forgeset.cli", "publish", str(tiny_corpus), "--repo-id", "a/b"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert result.returncode == 2
    assert "no Hugging Face token: set HF_TOKEN" in result.stderr


def test_publish_refuses_a_corrupt_corpus(tiny_corpus: Path, tmp_path: Path) -> None:
    import shutil

    out = tmp_path / "corpus"
    shutil.copytree(tiny_corpus, out)
    (out / "val" / "00000.tar").write_bytes(b"broken")
    result = CliRunner().invoke(app, ["publish", str(out), "--repo-id", "a/b", "--dry-run", str(tmp_path / "d")])
    assert result.exit_code == 1 and "refusing to publish" in result.output


@pytest.mark.parametrize("offline", ["0", "1"])
def test_an_unreachable_hub_is_one_clear_error(tiny_corpus: Path, tmp_path: Path, offline: str) -> None:
    import shutil
    import socket

    out = tmp_path / "corpus"
    shutil.copytree(tiny_corpus, out)
    with socket.socket() as probe:  # a port on loopback that nothing listens on: connection refused
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "HF_ENDPOINT": f"http://127.0.0.1:{port}", "HF_TOKEN": CANARY, "HF_HUB_OFFLINE": offline}
    command = [sys.executable, "-m", "forgeset.cli", "publish", str(out), "--repo-id", "forensics/tiny"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
    text = " ".join(result.stderr.split())
    assert result.returncode == 1, text
    assert f"cannot reach the Hub at http://127.0.0.1:{port}" in text and "run the same command again to resume" in text
    assert "Traceback" not in text and CANARY not in text


def test_card_licenses_and_degraded_share(build_corpus: Callable[..., Path], tmp_path: Path) -> None:
    from forgeset.manifests.corpus import Corpus
    from forgeset.publish.card import render_card

    inpaint = {"type": "inpaint", "name": "telea", "model": "opencv:telea", "count": 6, "mask": {"type": "boxes"}}
    out = build_corpus(tmp_path / "edit", tiny_spec(manipulate=[inpaint]))
    body = render_card(Corpus.open(out), "forensics/edit", {}).split("---\n", 2)[2]
    rows = manifest_rows(out).values()
    made = [r for r in rows if r["generator"] == "telea"]
    assert len(made) == 6 and all(r["license"] and r["parent_key"] for r in made)  # each keeps its real's license
    revision = {r["revision"] for r in made}.pop()
    opencv = "OpenCV algorithm (Apache-2.0), no model weights"
    telea = f"| `telea` | inpaint | `opencv:telea` | `{revision}` | {opencv} | 6 |"
    assert telea in body.splitlines()
    reals = Counter((r["source"].split(":")[0], r["license"]) for r in rows if r["kind"] == "real")
    licenses = body.split("## Licenses\n\n", 1)[1].split("\n## ", 1)[0]
    for (source, license_text), count in reals.items():
        cell = license_text.replace("(", "\\(").replace(")", "\\)")
        assert f"| {source} | {cell} | {count} |" in licenses.splitlines()
    assert "No degraded copies" in body


def test_card_counts_degraded_copies_and_their_share(tiny_corpus: Path, tmp_path: Path) -> None:
    import shutil

    import pyarrow as pa
    import pyarrow.parquet as pq

    from forgeset.manifests.corpus import Corpus
    from forgeset.publish.card import render_card
    from tests.conftest import rehash_index

    out = tmp_path / "corpus"
    shutil.copytree(tiny_corpus, out)
    table = pq.read_table(Layout(out).manifest)
    labels = table["label"].to_pylist()
    marked = [labels.index("real"), labels.index("fake"), len(labels) - 1 - labels[::-1].index("real")]
    perturbation = [("jpeg" if i in marked else None) for i in range(len(labels))]
    column = table.schema.get_field_index("perturbation")
    pq.write_table(table.set_column(column, "perturbation", pa.array(perturbation, pa.string())), Layout(out).manifest)
    rehash_index(out)
    body = render_card(Corpus.open(out), "forensics/tiny", {})
    assert f"3 of {len(labels)} samples ({3 / len(labels):.1%}) are degraded copies" in body
    section = body.split("## Degraded copies\n\n", 1)[1].split("\n## ", 1)[0].splitlines()
    assert "| jpeg | fake | 1 |" in section and "| jpeg | real | 2 |" in section
