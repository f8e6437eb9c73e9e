"""A local Ray cluster started by a build listens on loopback only."""

from __future__ import annotations

import ipaddress
import os
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from tests.conftest import tiny_spec, write_spec


def _listening(root: psutil.Process) -> set[tuple[str, int, str]]:
    """(address, port, process name) of every listening TCP socket in `root`'s process tree."""
    found = set()
    try:
        processes = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return found
    for process in processes:
        try:
            for connection in process.net_connections(kind="inet"):
                if connection.status == psutil.CONN_LISTEN:
                    found.add((connection.laddr.ip, connection.laddr.port, process.name()))
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


def _is_loopback(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%")[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback


def test_a_build_on_ray_listens_on_loopback_only(tmp_path: Path) -> None:
    spec = tiny_spec()
    spec["generate"][0]["count"] = 24
    spec_path = write_spec(tmp_path, spec)
    command = [sys.executable, "-m", "forgeset.cli", "build", "dataset", "--spec", str(spec_path)]
    command += ["--out", str(tmp_path / "out"), "--workers", "2", "--executor", "ray"]
    env = {k: v for k, v in os.environ.items() if k != "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"}  # the build sets it
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    root = psutil.Process(process.pid)
    seen: set[tuple[str, int, str]] = set()
    deadline = time.monotonic() + 300
    while process.poll() is None and time.monotonic() < deadline:
        seen |= _listening(root)
        time.sleep(0.2)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stderr.decode()
    names = {name for _, _, name in seen}
    assert any("gcs_server" in name or "raylet" in name for name in names), seen  # Ray's services were seen
    exposed = sorted(entry for entry in seen if not _is_loopback(entry[0]))
    assert exposed == []


def test_a_local_out_is_refused_on_a_cluster_of_several_nodes_unless_shared() -> None:
    from forgeset.builders.executors import OutputNotShared
    from forgeset.builders.executors.ray_executor import check_output_reachable

    with pytest.raises(OutputNotShared, match=r"the Ray cluster has 2 nodes and --out /data/out is a local path"):
        check_output_reachable("/data/out", alive_nodes=2, shared_fs=False)
    check_output_reachable("/data/out", alive_nodes=1, shared_fs=False)  # one node: its disk is the disk
    check_output_reachable("/data/out", alive_nodes=3, shared_fs=True)  # the user vouches for a shared mount
    check_output_reachable("s3://bucket/out", alive_nodes=3, shared_fs=False)


def test_every_host_serves_a_stage_and_every_stage_has_a_host() -> None:
    from forgeset.builders.executors.ray_executor import host_assignment

    assert host_assignment(1, 2) == [[0, 1]]  # one model, replicated on both hosts
    assert host_assignment(2, 2) == [[0], [1]]
    assert host_assignment(3, 2) == [[0], [1], [0]]  # each model loaded once
    assert host_assignment(2, 4) == [[0, 2], [1, 3]]


def test_the_cli_refuses_a_local_out_on_a_two_node_cluster(tmp_path: Path) -> None:
    """Two Ray nodes on 127.0.0.1: a local --out exits 2 before anything is built; --shared-fs builds."""
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    try:
        cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
        spec = tiny_spec()
        spec["generate"][0]["count"] = 2
        spec_path = write_spec(tmp_path, spec)
        command = [sys.executable, "-m", "forgeset.cli", "build", "dataset", "--spec", str(spec_path)]
        command += ["--out", str(tmp_path / "out"), "--executor", "ray", "--ray-address", cluster.address]
        refused = subprocess.run(command, capture_output=True, text=True, timeout=300)
        assert refused.returncode == 2, refused.stderr
        text = " ".join(refused.stderr.split())
        assert "the Ray cluster has 2 nodes and --out" in text and "--shared-fs" in text
        assert not list((tmp_path / "out").glob("train/*.tar"))
        shared = subprocess.run([*command, "--shared-fs"], capture_output=True, text=True, timeout=300)
        assert shared.returncode == 0, shared.stderr
    finally:
        cluster.shutdown()
