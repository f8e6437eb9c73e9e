"""A local Ray cluster started by a build listens on loopback only."""

from __future__ import annotations

import ipaddress
import os
import subprocess
import sys
import time
from pathlib import Path

import psutil

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
