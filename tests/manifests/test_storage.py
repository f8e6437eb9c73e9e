"""Storage: one interface over a local folder, memory:// and a real S3 API (moto's server, s3fs)."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import boto3
import fsspec
import pytest
from fsspec.implementations.memory import MemoryFileSystem

from forgeset.core.faults import FAULT_ENV
from forgeset.manifests.layout import UnsafePath
from forgeset.manifests.storage import Storage, StorageError, display_url, local_stamp

UNSAFE = ["../escape", "/etc/passwd", "a\\b", "~root", "", "a/../../b", "nul\x00"]


def _fresh(kind: str, tmp_path: Path, bucket: str | None) -> Storage:
    """An empty corpus root of each kind."""
    if kind == "local":
        return Storage(tmp_path / "corpus")
    if kind == "memory":
        return Storage(f"memory://forgeset-{uuid.uuid4().hex}/corpus")
    assert bucket is not None
    return Storage(f"{bucket}/corpus-{uuid.uuid4().hex}")


@pytest.fixture(params=["local", "memory", "s3"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Storage:
    bucket = request.getfixturevalue("s3_server") if request.param == "s3" else None
    return _fresh(request.param, tmp_path, bucket)


def test_publish_read_list_stamp_and_remove(storage: Storage, tmp_path: Path) -> None:
    payload = bytes(range(256)) * 1000
    storage.publish_bytes(payload, "train/00001.tar")
    storage.publish_bytes(b"{}", ".forgeset/shards/train-00001.done.json")
    scratch = storage.scratch_file("train/00000.tar")
    scratch.write_bytes(b"first shard")
    storage.publish_file(scratch, "train/00000.tar")

    assert not scratch.exists()  # consumed
    assert storage.list() == [".forgeset/shards/train-00001.done.json", "train/00000.tar", "train/00001.tar"]
    assert storage.list("train") == ["train/00000.tar", "train/00001.tar"]
    assert storage.list("nothing-here") == []
    assert storage.read_bytes("train/00001.tar") == payload
    with storage.open("train/00000.tar") as handle:
        assert handle.read() == b"first shard"
    assert storage.size("train/00001.tar") == 256_000
    assert storage.sha256("train/00001.tar") == hashlib.sha256(payload).hexdigest()
    assert storage.exists("train/00000.tar") and storage.exists("train") and not storage.exists("val/00000.tar")
    size, _, tag = storage.stamp("train/00001.tar").partition(":")
    assert size == "256000" and tag
    if storage.is_local:
        assert storage.stamp("train/00001.tar") == local_stamp(tmp_path / "corpus" / "train" / "00001.tar")

    storage.remove("train/00000.tar")
    storage.remove("train/00000.tar")  # already gone: nothing happens
    assert storage.list() == [".forgeset/shards/train-00001.done.json", "train/00001.tar"]
    storage.remove_tree(".forgeset")
    assert storage.list() == ["train/00001.tar"]


def test_a_replaced_file_gets_another_stamp(storage: Storage) -> None:
    storage.publish_bytes(b"a" * 10, "x.bin")
    before = storage.stamp("x.bin")
    storage.publish_bytes(b"b" * 10, "x.bin")
    assert storage.stamp("x.bin") != before
    assert storage.read_bytes("x.bin") == b"b" * 10


def test_stamps_of_a_prefix_equal_each_file_stamp_and_remove_many_deletes(storage: Storage) -> None:
    for index in range(3):
        storage.publish_bytes(bytes([index]) * (index + 1), f"train/0000{index}.tar")
    storage.publish_bytes(b"state", ".forgeset/spec.sha256")
    names = ["train/00000.tar", "train/00001.tar", "train/00002.tar"]
    assert storage.stamps("train") == {name: storage.stamp(name) for name in names}
    assert sorted(storage.stamps()) == [".forgeset/spec.sha256", *names]
    assert [stamp.partition(":")[0] for stamp in storage.stamps("train").values()] == ["1", "2", "3"]
    storage.remove_many([names[0], names[2], "train/missing.tar"])
    assert storage.list() == [".forgeset/spec.sha256", "train/00001.tar"]
    storage.remove_many([])
    assert storage.stamps("nothing") == {}


@pytest.mark.parametrize("name", UNSAFE)
def test_names_that_would_leave_the_root_are_refused(storage: Storage, name: str) -> None:
    with pytest.raises(UnsafePath):
        storage.publish_bytes(b"x", name)
    with pytest.raises(UnsafePath):
        storage.exists("train", name)
    assert storage.list() == []


def test_local_roots_use_plain_paths(tmp_path: Path) -> None:
    for root in (tmp_path, str(tmp_path), f"file://{tmp_path}"):
        storage = Storage(root)
        assert storage.is_local and storage.local == tmp_path and storage.fs is None
        assert storage.url_of("train", "00000.tar") == str(tmp_path / "train" / "00000.tar")


def test_object_storage_publishes_through_a_temporary_key(s3_server: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """An upload that fails before its copy leaves nothing at the final key and no temporary key."""
    storage = Storage(f"{s3_server}/corpus-{uuid.uuid4().hex}")
    uploaded: list[str] = []
    original_put = storage.fs.put_file

    def put_then_fail(source: str, key: str, **kwargs: Any) -> None:
        original_put(source, key, **kwargs)
        uploaded.append(key)

    def fail_copy(*args: Any, **kwargs: Any) -> None:
        raise ConnectionError("copy failed")

    monkeypatch.setattr(storage.fs, "put_file", put_then_fail)
    monkeypatch.setattr(storage.fs, "copy", fail_copy)
    scratch = storage.scratch_file("train/00000.tar")
    scratch.write_bytes(b"tar bytes")
    with pytest.raises(ConnectionError):
        storage.publish_file(scratch, "train/00000.tar")
    assert len(uploaded) == 1
    assert uploaded[0].startswith(f"{storage.root_path}/train/00000.tar.{os.getpid()}-")
    assert uploaded[0].endswith(".tmp")
    assert storage.list() == []  # neither the final key nor the temporary one
    assert not scratch.exists()


def test_a_writer_killed_between_upload_and_copy_leaves_no_object_at_the_final_key(s3_server: str) -> None:
    """SIGKILL at the `object-uploaded` checkpoint: only a *.tmp key remains, which a build removes."""
    root = f"{s3_server}/corpus-{uuid.uuid4().hex}"
    script = f"from forgeset.manifests.storage import Storage; Storage({root!r}).publish_bytes(b'whole', 'a/b.bin')"
    env = {**os.environ, FAULT_ENV: "object-uploaded:1"}
    killed = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, timeout=120)
    assert killed.returncode == -9, killed.stderr.decode()
    storage = Storage(root)
    leftovers = storage.list()
    assert len(leftovers) == 1 and leftovers[0].startswith("a/b.bin.") and leftovers[0].endswith(".tmp")
    assert not storage.exists("a/b.bin")
    bucket, _, prefix = storage.root_path.partition("/")
    keys = [o["Key"] for o in boto3.client("s3").list_objects_v2(Bucket=bucket, Prefix=prefix)["Contents"]]
    assert keys == [f"{prefix}/{leftovers[0]}"]  # checked with another client, not through s3fs's cache
    subprocess.run([sys.executable, "-c", script], check=True, timeout=120)
    assert storage.read_bytes("a/b.bin") == b"whole"


class _EchoingFileSystem(MemoryFileSystem):
    """A client whose constructor error repeats its options, as some do."""

    protocol = "forgeset-echo"

    def __init__(self, **options: Any) -> None:
        raise ValueError(f"bad options {options}")


def test_errors_do_not_echo_storage_options() -> None:
    fsspec.register_implementation("forgeset-echo", _EchoingFileSystem, clobber=True)
    options = {"key": "AKIA-FAKE-KEY", "secret": "s3cr3t-value", "client_kwargs": {"token": "nested-token"}}
    with pytest.raises(StorageError) as caught:
        Storage("forgeset-echo://user:password@bucket/corpus", options)
    message = str(caught.value)
    assert message.startswith("forgeset-echo://bucket/corpus: cannot open: ValueError: bad options")
    for secret in ("AKIA-FAKE-KEY", "s3cr3t-value", "nested-token", "password"):
        assert secret not in message
    assert display_url("s3://k:s@bucket/a/b") == "s3://bucket/a/b"


def test_an_unknown_protocol_is_a_clear_error() -> None:
    with pytest.raises(StorageError, match=r"^nosuch://x: cannot open: ValueError: Protocol not known: nosuch"):
        Storage("nosuch://x")
