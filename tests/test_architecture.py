"""The floor plan: one owner per name, layers import downwards, traits instead of type checks."""

from __future__ import annotations

import ast
import inspect
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import forgeset
from forgeset.builders.prompts import prompt_sources
from forgeset.builders.sources import real_sources
from forgeset.detectors import detectors
from forgeset.generators import generators, manipulators
from forgeset.generators.base import Stage
from forgeset.generators.masks import mask_generators
from forgeset.perturbations.ops import perturb_ops

PACKAGE = Path(forgeset.__file__).resolve().parent
ROOT = PACKAGE.parent
LAYOUT = "manifests/layout.py"
# Literal -> the modules that may spell it. Layout names live in the layout module alone; image
# *format* names ("png", "jpeg") belong to the image policy and encoder; the sources' lists of
# input file extensions and the report's matplotlib figure format are not OUT's layout.
OWNED_LITERALS = {
    ".forgeset": {LAYOUT},
    "test_ood": {LAYOUT},
    "jpg": {LAYOUT, "builders/sources/folder.py", "builders/sources/webdataset_tars.py"},
    "mask.png": {LAYOUT},
    "index.json": {LAYOUT},
    "manifest.parquet": {LAYOUT},
    "rejects.parquet": {LAYOUT},
    "curation.parquet": {LAYOUT},
    "spec.resolved.yaml": {LAYOUT},
    "validation": {LAYOUT},
    "png": {
        LAYOUT,
        "imaging/policy.py",
        "builders/sources/folder.py",
        "builders/sources/webdataset_tars.py",
        "detectors/report.py",
    },
}
# Spelled inside other strings too (messages, paths), so looked for as substrings.
SUBSTRING_LITERALS = {".forgeset", "test_ood", "mask.png"}
# Type names that other modules may spell, and why.
TYPE_NAME_EXCEPTIONS = {
    ("manifests/index.py", "webdataset"): "the webdataset library's version, not the source type",
    ("publish/card.py", "webdataset"): "the Hub tag for the format, not the source type",
    ("generators/inpaint.py", "boxes"): "the inpaint stage's own default mask",
    ("generators/masks/inverse.py", "boxes"): "the inverse mask wraps the mask types it inverts",
    ("generators/masks/inverse.py", "brush"): "the inverse mask wraps the mask types it inverts",
    ("detectors/watermark.py", "watermark"): "the detector decodes what the watermark op embeds",
    ("perturbations/ops/watermark.py", "watermark"): "the op embeds what the watermark detector decodes",
}
REGISTRIES = [real_sources, prompt_sources, generators, manipulators, mask_generators, perturb_ops, detectors]


def _string_constants(path: Path) -> list[tuple[int, str]]:
    """Every string constant of a module except docstrings, with its line."""
    tree = ast.parse(path.read_text())
    docstrings = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                docstrings.add(id(first.value))
    return [
        (node.lineno, node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings
    ]


def _modules() -> list[tuple[str, Path]]:
    return [(p.relative_to(PACKAGE).as_posix(), p) for p in sorted(PACKAGE.rglob("*.py"))]


def test_layout_literals_are_spelled_only_by_their_owner() -> None:
    found = []
    for relative, path in _modules():
        for line, text in _string_constants(path):
            for literal, owners in OWNED_LITERALS.items():
                if relative in owners:
                    continue
                if text == literal or (literal in SUBSTRING_LITERALS and literal in text):
                    found.append(f"{relative}:{line}: {text!r}")
    assert found == []


def test_component_type_names_are_spelled_only_by_their_component() -> None:
    """A registered type name appears as a string only in the file that registers it."""
    found = []
    for registry in REGISTRIES:
        for name in registry.names():
            owner = Path(inspect.getsourcefile(registry.get(name)) or "").resolve()
            for relative, path in _modules():
                if path == owner:
                    continue
                for line, text in _string_constants(path):
                    if text == name and (relative, name) not in TYPE_NAME_EXCEPTIONS:
                        found.append(f"{relative}:{line}: {registry.role} {name!r}")
    assert found == []


def test_every_stage_declares_its_traits() -> None:
    for registry in (generators, manipulators):
        for name in registry.names():
            stage = registry.get(name)
            assert issubclass(stage, Stage)
            assert isinstance(stage.kind, str) and stage.kind, name
            assert isinstance(stage.localized, bool) and isinstance(stage.needs_prompts, bool)


@pytest.mark.skipif(
    shutil.which("lint-imports", path=str(Path(sys.executable).parent)) is None, reason="no import-linter"
)
def test_an_upward_import_breaks_the_layers_contract(tmp_path: Path) -> None:
    """A copy of the package with imaging importing from builders fails `lint-imports`; the original passes."""
    linter = str(Path(sys.executable).parent / "lint-imports")
    config = ["--config", str(ROOT / "pyproject.toml")]
    kept = subprocess.run([linter, *config], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert kept.returncode == 0, kept.stdout
    shutil.copytree(PACKAGE, tmp_path / "forgeset", ignore=shutil.ignore_patterns("__pycache__"))
    resize = tmp_path / "forgeset" / "imaging" / "resize.py"
    resize.write_text(resize.read_text() + "\nfrom forgeset.builders.spec import Spec  # noqa: E402,F401\n")
    env = {"PYTHONPATH": str(tmp_path), "PATH": str(Path(sys.executable).parent)}
    broken = subprocess.run([linter, *config], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120)
    assert broken.returncode == 1
    assert "forgeset.imaging.resize -> forgeset.builders.spec" in broken.stdout
