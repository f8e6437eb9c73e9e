"""Shared fixtures: offline environment, one local Ray session, tiny specs, hostile images."""

from __future__ import annotations

import io
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from PIL import Image

# Set before Ray starts so its workers inherit them: offline, and a builtin-model cache that this
# session builds itself (so the build-from-config path is exercised every run).
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ.setdefault("FORGESET_CACHE", tempfile.mkdtemp(prefix="forgeset-test-cache-"))
# Ray: the test session's local cluster listens on 127.0.0.1 only, like the ones builds start.
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
# FiftyOne: no telemetry, a database of this session's own (its bundled mongod 6.0.5 is older
# than FiftyOne asks for, so version validation is off).
os.environ["FIFTYONE_DO_NOT_TRACK"] = "true"
os.environ["FIFTYONE_DATABASE_VALIDATION"] = "false"
os.environ["FIFTYONE_DATABASE_NAME"] = f"forgeset-tests-{os.getpid()}"
os.environ.setdefault("FIFTYONE_DATABASE_DIR", tempfile.mkdtemp(prefix="forgeset-test-fiftyone-"))

SPECS = Path(__file__).resolve().parent.parent / "specs"
ALL_PHOTOS = ["astronaut", "coffee", "chelsea", "rocket", "hubble", "retina", "ihc", "motorcycle"]


def tiny_spec(**overrides: Any) -> dict[str, Any]:
    """A small spec (16 real tiles, 12 fakes, 32 px, shards of 6) that builds in seconds."""
    spec: dict[str, Any] = {
        "name": "tiny",
        "seed": 7,
        "image": {"size": 32},
        "shards": {"size": 6, "min_per_split": 1},  # 6 shards (4/1/1): few Ray tasks per tiny build
        "real": [{"type": "bundled", "tile": 64, "max_tiles": 2, "photos": ALL_PHOTOS}],
        "prompts": {"type": "templates", "classes": ["cat", "dog", "car"]},
        "generate": [
            {
                "type": "text2image",
                "model": "builtin:tiny-sd",
                "count": 12,
                "steps": 2,
                "guidance": 3.0,
                "batch_size": 4,
            }
        ],
    }
    spec.update(overrides)
    return spec


def write_spec(folder: Path, data: dict[str, Any], name: str = "spec.yaml") -> Path:
    """Write `data` as a YAML spec file in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@pytest.fixture(scope="session")
def ray_session() -> Any:
    """One local Ray cluster (2 CPUs) for the whole test session; builds reuse it."""
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    yield ray
    ray.shutdown()


S3_BUCKET = "forgeset-test"


@pytest.fixture(scope="session")
def s3_server() -> Any:
    """A real S3 API: moto's server on 127.0.0.1 (a free port) with bucket `forgeset-test`; yields s3://forgeset-test.

    Only fake credentials exist: the environment points boto3/s3fs (and Ray workers, which
    inherit it) at the server, and no AWS config file of the machine is read.
    """
    import logging

    import boto3
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    fake = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": f"http://{host}:{port}",
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    }
    saved = {name: os.environ.get(name) for name in fake}
    os.environ.update(fake)
    boto3.client("s3").create_bucket(Bucket=S3_BUCKET)
    yield f"s3://{S3_BUCKET}"
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    server.stop()


def manifest_rows(out: Path) -> dict[str, dict[str, Any]]:
    """A built corpus's manifest rows by key, read through the validating Corpus reader."""
    from forgeset.manifests.corpus import Corpus

    return Corpus.open(out).rows_by_key


def rehash_index(out: Path, change: Callable[[dict[str, Any]], None] | None = None) -> None:
    """Rewrite index.json as an attacker would: apply `change`, then make every hash consistent.

    The vouched files' sizes and sha256 are recomputed from the bytes on disk, and so is the
    index's own content hash: what is left to catch a doctored corpus is validation, not hashes.
    """
    import json

    from forgeset.manifests.index import SELF_HASH_FIELD, file_entry, index_content_sha256
    from forgeset.manifests.layout import Layout

    path = Layout(out).index
    index = json.loads(path.read_text())
    if change is not None:
        change(index)
    index["files"] = {name: file_entry(out / name) for name in index["files"]}
    index[SELF_HASH_FIELD] = index_content_sha256(index)
    path.write_text(json.dumps(index, indent=2))


@pytest.fixture(scope="session")
def build_corpus() -> Callable[..., Path]:
    """Build a spec dict into a folder in this process (the local executor) and return OUT.

    Tests of Ray itself build with RayExecutor on `ray_session`; the local executor writes the
    same bytes (tested), without a cluster's start-up on every build.
    """
    from forgeset.builders.build import build_dataset
    from forgeset.builders.executors import LocalExecutor
    from forgeset.builders.spec import load_spec

    def build(folder: Path, data: dict[str, Any], **kwargs: Any) -> Path:
        spec_path = write_spec(folder, data)
        out = folder / "out"
        kwargs.setdefault("executor", LocalExecutor())
        build_dataset(load_spec(spec_path), out, **kwargs)
        return out

    return build


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory: pytest.TempPathFactory, build_corpus: Callable[..., Path]) -> Path:
    """The tiny spec, built once per session. Tests that alter it must copy it first."""
    return build_corpus(tmp_path_factory.mktemp("tiny"), tiny_spec())


@pytest.fixture(scope="session")
def forensics_mix(tmp_path_factory: pytest.TempPathFactory, ray_session: Any) -> Path:
    """specs/forensics-mix.yaml built once per session on Ray (masks, lineage, the held-out split)."""
    from forgeset.builders.build import build_dataset
    from forgeset.builders.executors import RayExecutor
    from forgeset.builders.spec import load_spec

    out = tmp_path_factory.mktemp("mix") / "out"
    build_dataset(load_spec(SPECS / "forensics-mix.yaml"), out, executor=RayExecutor(2))
    return out


@pytest.fixture(scope="session")
def validated_mix(forensics_mix: Path) -> dict[str, Any]:
    """`validate` run once on the forensics mix (spectrum, cnn, npr at default epochs)."""
    from forgeset.detectors.report import render_report
    from forgeset.detectors.validate import validate_corpus

    results = validate_corpus(forensics_mix, ["spectrum", "cnn", "npr"])
    (forensics_mix / "validation" / "report.html").write_text(render_report(results, "forensics-mix"))
    return results


def chromium_flags(profile: Path) -> list[str]:
    """Headless Chromium as root on a machine with no network (a fresh profile each time)."""
    return [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--no-first-run",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
    ]


def _jpeg_with_exif(pixels: np.ndarray, orientation: int = 1) -> bytes:
    image = Image.fromarray(pixels)
    exif = Image.Exif()
    exif[0x0112] = orientation
    exif[0xA431] = "SERIAL-12345-CANARY"  # BodySerialNumber
    exif[0x8825] = {1: "N", 2: (52.0, 31.0, 12.0)}  # GPS IFD: latitude
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=95, exif=exif)
    return buffer.getvalue()


def _encoded(image: Image.Image, fmt: str, **kwargs: Any) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


@pytest.fixture(scope="session")
def hostile_images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with one file per hostile-input case; names say what each one is."""
    folder = tmp_path_factory.mktemp("hostile")
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
    halves = np.zeros((20, 40, 3), dtype=np.uint8)
    halves[:, :20] = (255, 0, 0)  # left half red, right half blue (as stored)
    halves[:, 20:] = (0, 0, 255)
    palette = Image.fromarray(rgb).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    palette.info["transparency"] = 0
    rgba = np.dstack([rgb, np.full((48, 64), 128, dtype=np.uint8)])
    good = _encoded(Image.fromarray(rgb), "JPEG", quality=90)
    files = {
        "ok_exif_gps.jpg": _jpeg_with_exif(rgb),
        "rotated_exif6.jpg": _jpeg_with_exif(halves, orientation=6),
        "cmyk.jpg": _encoded(Image.fromarray(rgb).convert("CMYK"), "JPEG", quality=95),
        "grey16.png": _encoded(Image.fromarray(np.full((40, 40), 65535, dtype=np.uint16)), "PNG"),
        "palette_transparent.png": _encoded(palette, "PNG"),
        "rgba.png": _encoded(Image.fromarray(rgba), "PNG"),
        "grey.png": _encoded(Image.fromarray(rgb[..., 0]), "PNG"),
        "truncated.jpg": good[: len(good) // 2],
        "empty.png": b"",
        "text_not_image.png": b"this is not an image\n" * 10,
        "bomb.png": _encoded(Image.new("1", (12000, 12000)), "PNG"),
        "subdir/nested.webp": _encoded(Image.fromarray(rgb), "WEBP", lossless=True),
        "notes.txt": b"not listed: extension is not allowlisted",
        ".hidden/skip.png": _encoded(Image.fromarray(rgb), "PNG"),
    }
    for name, data in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return folder


HOSTILE_REJECTS = {
    "bomb.png": "too many pixels",
    "empty.png": "empty file",
    "text_not_image.png": "not an image",
    "truncated.jpg": "truncated or corrupt",
}
HOSTILE_ACCEPTED = [
    "cmyk.jpg",
    "grey.png",
    "grey16.png",
    "ok_exif_gps.jpg",
    "palette_transparent.png",
    "rgba.png",
    "rotated_exif6.jpg",
    "subdir/nested.webp",
]
