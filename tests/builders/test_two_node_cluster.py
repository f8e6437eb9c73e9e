"""A Ray cluster of two nodes on 127.0.0.1: shard tasks forced onto the node that is not the driver's.

The cluster runs in a subprocess (this module run with `python -m`): a process holds one Ray
session, and the test session's own (`ray_session`) must not be captured by this cluster. The
subprocess starts a head (the driver's node) and a second node that alone offers the resource
`forgeset_worker`; builds ask for it with --ray-resources, and every shard task records the node
it ran on. The parent asserts the corpus written to the S3 stand-in equals the single-node local
build byte for byte, and that a local --out is refused on this cluster unless --shared-fs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import write_spec
from tests.manifests.test_object_storage_build import REALS_ONLY, assert_same_corpus, corpus_files

WORKER_RESOURCE = "forgeset_worker"
REPO = Path(__file__).resolve().parents[2]


def _run_on_two_nodes(spec_path: str, url: str, local_out: str, records: str, result_path: str) -> None:
    """The subprocess: start the cluster, run the three builds through the CLI, write what happened as JSON."""
    import ray
    from ray.cluster_utils import Cluster
    from typer.testing import CliRunner

    from forgeset.builders.executors import ray_executor
    from forgeset.cli import app

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    worker = cluster.add_node(num_cpus=2, resources={WORKER_RESOURCE: 2})
    ray.init(address=cluster.address, log_to_driver=False, logging_level="ERROR")
    cluster.wait_for_nodes()
    try:
        original = ray_executor._shard_task

        def recorded(ctx: Any, shard: Any, *batches: Any) -> Any:
            node = ray.get_runtime_context().get_node_id()
            Path(records, f"{Path(ctx.out_dir).name}-{shard.split}-{shard.index}").write_text(node)
            return original(ctx, shard, *batches)

        ray_executor._shard_task = recorded  # RayExecutor.run makes its remote function from this name
        runner = CliRunner()
        build = ["build", "dataset", "--spec", spec_path, "--executor", "ray", "--workers", "2"]
        pinned = ["--ray-resources", json.dumps({WORKER_RESOURCE: 1})]
        runs = {
            "s3": runner.invoke(app, [*build, "--out", url, *pinned]),
            "refused": runner.invoke(app, [*build, "--out", local_out, *pinned]),
            "shared": runner.invoke(app, [*build, "--out", local_out, "--shared-fs", *pinned]),
        }
        result = {
            "driver": ray.get_runtime_context().get_node_id(),
            "worker": worker.node_id,
            "alive": sum(1 for node in ray.nodes() if node["Alive"]),
            "runs": {name: [run.exit_code, run.output] for name, run in runs.items()},
        }
        Path(result_path).write_text(json.dumps(result))
    finally:
        ray.shutdown()
        cluster.shutdown()


@pytest.fixture(scope="module")
def reals_reference(tmp_path_factory: pytest.TempPathFactory, build_corpus: Callable[..., Path]) -> Path:
    return build_corpus(tmp_path_factory.mktemp("reals"), REALS_ONLY)


def test_shards_on_the_second_node_write_the_single_node_bytes_to_s3(
    s3_server: str, tmp_path: Path, reals_reference: Path
) -> None:
    spec_path = write_spec(tmp_path, REALS_ONLY)
    url = f"{s3_server}/cluster-{uuid.uuid4().hex[:12]}"
    local_out = tmp_path / "local"
    records = tmp_path / "nodes"
    records.mkdir()
    result_path = tmp_path / "result.json"
    arguments = [str(spec_path), url, str(local_out), str(records), str(result_path)]
    # The subprocess inherits the S3 stand-in's endpoint and fake credentials from os.environ.
    ran = subprocess.run(
        [sys.executable, "-m", "tests.builders.test_two_node_cluster", *arguments],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert ran.returncode == 0, ran.stderr[-3000:]
    result = json.loads(result_path.read_text())
    runs = result["runs"]
    assert result["alive"] == 2
    assert runs["s3"][0] == 0, runs["s3"][1]
    assert_same_corpus(url, reference=reals_reference)

    from forgeset.manifests.verify import verify_corpus

    assert verify_corpus(url)["samples"] == 16
    code, output = runs["refused"]
    assert code == 2, output
    message = " ".join(output.split())
    assert f"the Ray cluster has 2 nodes and --out {local_out} is a local path" in message
    assert "--shared-fs" in message
    assert runs["shared"][0] == 0, runs["shared"][1]
    assert corpus_files(local_out) == corpus_files(reals_reference)
    # Every shard of both builds ran on the second node, none on the driver's.
    nodes = {path.name: path.read_text() for path in records.iterdir()}
    shards = len([name for name in corpus_files(reals_reference) if name.endswith(".tar")])
    assert len([name for name in nodes if name.startswith(url.rpartition("/")[2])]) == shards
    assert len([name for name in nodes if name.startswith("local-")]) == shards
    assert set(nodes.values()) == {result["worker"]} and result["worker"] != result["driver"]


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("{writer: 1}", "--ray-resources: not JSON"),
        ('{"writer": 0}', "--ray-resources: expected a JSON object of names to positive numbers"),
        ('["writer"]', "--ray-resources: expected a JSON object of names to positive numbers"),
    ],
)
def test_ray_resources_must_be_a_json_object_of_positive_amounts(value: str, problem: str, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from forgeset.cli import app

    spec_path = write_spec(tmp_path, REALS_ONLY)
    build = ["build", "dataset", "--spec", str(spec_path), "--out", str(tmp_path / "out"), "--executor", "ray"]
    refused = CliRunner().invoke(app, [*build, "--ray-resources", value])
    assert refused.exit_code == 2
    assert problem in " ".join(refused.output.split())
    local = CliRunner().invoke(app, [*build[:-1], "local", "--ray-resources", '{"writer": 1}'])
    assert local.exit_code == 2
    assert "--ray-resources needs --executor ray" in local.output
    assert not (tmp_path / "out").exists()


if __name__ == "__main__":
    _run_on_two_nodes(*sys.argv[1:6])
