"""A real two-node Ray cluster on this machine (loopback only): a study joins it with --address
and its trials' workers run on both nodes, with token authentication on."""

import secrets
import subprocess
import sys

import polars as pl
import pytest

from tests.conftest import REPO, write_spec

pytestmark = pytest.mark.slow
RAY = [sys.executable, "-m", "ray.scripts.scripts"]


def test_study_runs_on_a_two_node_cluster(tmp_path, study_env):
    # As the README says to start a cluster: token mode and one shared token in every process.
    env = {**study_env(tmp_path / "results", 8279), "RAY_AUTH_TOKEN": secrets.token_hex(16), "PYTHONPATH": str(REPO)}
    cluster_env = {**env, "RAY_AUTH_MODE": "token"}
    head = [
        *RAY,
        "start",
        "--head",
        "--node-ip-address=127.0.0.1",
        "--port=6391",
        "--num-cpus=1",
        "--include-dashboard=false",
        "--object-store-memory=200000000",
        "--disable-usage-stats",
    ]
    node = [
        *RAY,
        "start",
        "--address=127.0.0.1:6391",
        "--node-ip-address=127.0.0.1",
        "--num-cpus=1",
        "--object-store-memory=200000000",
        "--disable-usage-stats",
    ]
    try:
        for command in (head, node):
            started = subprocess.run(command, env=cluster_env, capture_output=True, text=True, timeout=180)
            assert started.returncode == 0, started.stdout[-2000:] + started.stderr[-2000:]
        spec = write_spec(
            tmp_path / "cluster.yaml",
            name="cluster",
            trials=2,
            resources={"workers": 2, "cpus_per_worker": 0.45, "trial_cpus": 0.1, "placement": "spread"},
        )
        result = subprocess.run(
            [sys.executable, "-m", "platform.study", "run", str(spec), "--address", "127.0.0.1:6391"],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
        )
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    finally:
        subprocess.run([*RAY, "stop", "--force"], env=env, capture_output=True, timeout=120)
    trials = pl.read_parquet(tmp_path / "results" / "cluster" / "trials" / "*.parquet")
    assert trials.height == 2 and (trials["status"] == "completed").all()
    nodes = {n for ids in trials["node_ids"] for n in ids.split(",")}
    assert len(nodes) == 2, trials["node_ids"].to_list()  # two data-parallel workers, one per node
    assert (trials["workers"] == 2).all()
