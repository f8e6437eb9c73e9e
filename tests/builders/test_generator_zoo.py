"""Every builtin generator family builds through the same path, and real-model specs plan offline."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from forgeset.cli import app
from tests.conftest import SPECS, manifest_rows

RECIPE = ("model", "revision", "pipeline", "scheduler", "scheduler_config", "steps", "guidance", "dtype", "device")
RECIPE += ("gen_size", "seed", "license", "diffusers_version", "torch_version")


def test_the_generator_zoo_builds_verifies_and_records_each_familys_recipe(tmp_path: Path, build_corpus) -> None:
    import yaml

    out = build_corpus(tmp_path, yaml.safe_load((SPECS / "generator-zoo.yaml").read_text()))
    assert CliRunner().invoke(app, ["verify", str(out)]).exit_code == 0
    fakes = [row for row in manifest_rows(out).values() if row["label"] == "fake"]
    pipelines = {row["generator"]: row["pipeline"] for row in fakes}
    assert pipelines == {
        "tiny-sd": "StableDiffusionPipeline",
        "tiny-sdxl": "StableDiffusionXLPipeline",
        "tiny-sdxl-turbo": "StableDiffusionXLPipeline",
        "tiny-lcm": "LatentConsistencyModelPipeline",
        "tiny-sd3": "StableDiffusion3Pipeline",
        "tiny-flux": "FluxPipeline",
        "tiny-pixart-sigma": "PixArtSigmaPipeline",
        "tiny-kandinsky22": "KandinskyV22CombinedPipeline",
        "tiny-dit": "DiTPipeline",
    }
    assert len(set(pipelines.values())) >= 7
    assert len(fakes) == 9 * 8
    for row in fakes:
        missing = [field for field in RECIPE if row[field] is None]
        assert missing == [], (row["generator"], missing)
        assert json.loads(row["scheduler_config"])  # a config that reproduces the timesteps
        assert (row["width"], row["height"]) == (64, 64)  # one policy for every family
    dit = [row for row in fakes if row["generator"] == "tiny-dit"]
    assert {row["gen_size"] for row in dit} == {32} and {row["kind"] for row in dit} == {"class2image"}
    assert {row["prompt"] for row in dit} <= {"tabby", "golden retriever", "sports car", "volcano"}
    turbo = [row for row in fakes if row["generator"] == "tiny-sdxl-turbo"]
    assert {(row["steps"], row["guidance"]) for row in turbo} == {(1, 0.0)}


@pytest.mark.parametrize("spec", ["dragon-like.yaml", "genimage-like.yaml", "generator-zoo.yaml"])
def test_specs_plan_offline_without_loading_or_writing(tmp_path: Path, spec: str, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["build", "dataset", "--spec", str(SPECS / spec), "--plan-only"])
    text = " ".join(result.output.split())
    assert result.exit_code == 0, text
    assert "estimated GPU time:" in text and "nothing was loaded or written" in text
    assert list(tmp_path.iterdir()) == []
