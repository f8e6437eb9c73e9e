"""Property tests: any YAML document is a Spec or a SpecError, and keys, seeds and names are well formed.

Random documents and random mutations of the shipped specs go through parse_spec and load_spec;
the only allowed outcomes are a usable Spec (its resolved YAML parses back to the same hash) or a
SpecError whose every problem is one non-empty line. Bounded so the file runs in a few seconds.
"""

from __future__ import annotations

import copy
import math
import re
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from forgeset.builders.spec import Spec, SpecError, load_spec, parse_spec
from forgeset.core.naming import NAME_PATTERN, slug
from forgeset.core.seeds import sample_seed, unit_draw
from tests.conftest import SPECS

FUZZ = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
SHIPPED = {path.name: yaml.safe_load(path.read_text()) for path in sorted(SPECS.glob("*.yaml"))}


def _keys() -> set[str]:
    """Every key the shipped specs use, so random documents reach deep into validation."""
    found: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            found.update(str(k) for k in node)
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(list(SHIPPED.values()))
    return found | {"type", "templates", "classes", "path", "urls", "source", "ops", "per_label", "mask"}


KEYS = sorted(_keys())
TYPES = ["text2image", "inpaint", "launder", "bundled", "folder", "webdataset", "huggingface", "templates", "file"]
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12)
    | st.sampled_from([*TYPES, "builtin:tiny-sd", "opencv:telea", "a photo of a {}", "{x}", "{", "png", "auto"])
)
KEY = st.sampled_from(KEYS) | st.text(max_size=8)
DOCUMENTS = st.recursive(
    SCALARS,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(KEY, children, max_size=5),
    max_leaves=25,
)
TOP_LEVEL = st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=6), DOCUMENTS, max_size=8)


def _check_outcome(make: Any) -> None:
    """`make()` returns a usable Spec or raises a SpecError of non-empty one-line problems."""
    try:
        spec = make()
    except SpecError as err:
        assert err.problems, err
        for path, message in err.problems:
            assert isinstance(path, str) and "\n" not in path
            assert message.strip() and "\n" not in message, message
        return
    spec = getattr(spec, "spec", spec)
    assert isinstance(spec, Spec)
    again = parse_spec(yaml.safe_load(spec.resolved_yaml()))
    assert again.sha256() == spec.sha256()


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every location in a parsed YAML document (mapping keys and list indices)."""
    found = [prefix] if prefix else []
    if isinstance(node, dict):
        for key, value in node.items():
            found += _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += _paths(value, (*prefix, index))
    return found


def _mutate(document: Any, location: tuple[Any, ...], operation: str, value: Any) -> None:
    parent = document
    for part in location[:-1]:
        parent = parent[part]
    last = location[-1]
    if operation == "delete":
        del parent[last]
    elif operation == "replace":
        parent[last] = value
    elif operation == "rename" and isinstance(parent, dict):
        parent[str(value)[:20] or "x"] = parent.pop(last)
    elif operation == "retype":
        old = parent[last]
        if isinstance(old, bool):
            parent[last] = int(old)
        elif isinstance(old, int):
            parent[last] = [True, float(old), str(old), old * 10**9, -old][len(str(value)) % 5]
        elif isinstance(old, float):
            parent[last] = int(old) if math.isfinite(old) else str(old)
        elif isinstance(old, str):
            parent[last] = [old, {"x": old}, None, old * 50][len(str(value)) % 4]
        elif isinstance(old, list):
            parent[last] = old[0] if old else {}
        elif isinstance(old, dict):
            parent[last] = list(old.values())
    else:
        parent[last] = None


@FUZZ
@given(TOP_LEVEL)
def test_random_documents_give_a_spec_or_a_spec_error(document: dict[Any, Any]) -> None:
    text = yaml.safe_dump(document, allow_unicode=True)
    _check_outcome(lambda: parse_spec(yaml.safe_load(text)))


@FUZZ
@given(DOCUMENTS)
def test_any_yaml_value_as_a_whole_spec(document: Any) -> None:
    _check_outcome(lambda: parse_spec(yaml.safe_load(yaml.safe_dump(document))))


@FUZZ
@given(st.data())
def test_mutated_shipped_specs_give_a_spec_or_a_spec_error(data: st.DataObject) -> None:
    document = copy.deepcopy(SHIPPED[data.draw(st.sampled_from(sorted(SHIPPED)), label="spec")])
    for _ in range(data.draw(st.integers(1, 3), label="mutations")):
        paths = _paths(document)
        if not paths:
            break
        location = data.draw(st.sampled_from(paths), label="location")
        operation = data.draw(st.sampled_from(["delete", "replace", "rename", "retype", "null"]), label="operation")
        _mutate(document, location, operation, data.draw(DOCUMENTS | KEY, label="value"))
    text = yaml.safe_dump(document, allow_unicode=True, sort_keys=False)
    _check_outcome(lambda: parse_spec(yaml.safe_load(text)))


@pytest.fixture(scope="module")
def scratch() -> Any:
    with tempfile.TemporaryDirectory(prefix="spec-fuzz-") as folder:
        yield Path(folder)


@settings(FUZZ, max_examples=100)
@given(st.binary(max_size=300) | st.text(max_size=300).map(str.encode))
def test_arbitrary_bytes_as_a_spec_file(scratch: Path, content: bytes) -> None:
    path = scratch / "spec.yaml"
    path.write_bytes(content)
    _check_outcome(lambda: load_spec(path))


@settings(FUZZ, max_examples=300)
@given(st.lists(st.one_of(st.integers(), st.text(max_size=20), st.floats(allow_nan=False)), max_size=4))
def test_unit_draw_lies_in_zero_one_and_is_deterministic(parts: list[Any]) -> None:
    draw = unit_draw(*parts)
    assert 0.0 <= draw < 1.0
    assert unit_draw(*parts) == draw


@settings(FUZZ, max_examples=300)
@given(st.integers(min_value=0, max_value=2**63 - 1), st.text(max_size=40), st.text(max_size=40))
def test_sample_seed_is_63_bit_deterministic_and_differs_per_key(seed: int, key: str, other: str) -> None:
    value = sample_seed(seed, key)
    assert 0 <= value < 2**63
    assert sample_seed(seed, key) == value
    if other != key:
        assert sample_seed(seed, other) != value  # a collision has probability 2**-63
    assert sample_seed(seed + 1, key) != value


@settings(FUZZ, max_examples=300)
@given(st.text(max_size=60))
def test_slug_always_gives_a_name(text: str) -> None:
    assert re.fullmatch(NAME_PATTERN, slug(text)), (text, slug(text))
    assert slug(slug(text)) == slug(text)
