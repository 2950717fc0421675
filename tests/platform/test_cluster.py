"""A real two-node Ray cluster on this machine (loopback only): a study joins it with --address
and its trials' workers run on both nodes, with token authentication on; a study run without
--address beside it starts its own local instance."""

import os
import secrets
import signal
import subprocess
import sys
import threading

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
            trials=1,  # one trial's two workers, spread, already land on both nodes
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
        _starts_its_own_local_instance(write_spec(tmp_path / "local.yaml", name="local"), env, 8282)
    finally:
        subprocess.run([*RAY, "stop", "--force"], env=env, capture_output=True, timeout=120)
    trials = pl.read_parquet(tmp_path / "results" / "cluster" / "trials" / "*.parquet")
    assert trials.height == 1 and trials["status"][0] == "completed"
    nodes = set(trials["node_ids"][0].split(","))
    assert len(nodes) == 2, trials["node_ids"].to_list()  # two data-parallel workers, one per node
    assert trials["workers"][0] == 2


def _starts_its_own_local_instance(spec, env, port: int) -> None:
    """Without --address or RAY_ADDRESS a study starts a local instance, though this machine runs a
    `ray start` cluster (a plain ray.init() would join it). Stopped once it names its own dashboard."""
    driver = subprocess.Popen(
        [sys.executable, "-m", "platform.study", "run", str(spec)],
        cwd=REPO,
        env={**env, "STUDY_DASHBOARD_PORT": str(port), "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )

    def stop() -> None:  # a zombie keeps its group until wait(), so this never misses the driver
        os.killpg(driver.pid, signal.SIGKILL)

    lines, timeout = [], threading.Timer(300, stop)  # ends the loop below if no line ever comes
    timeout.start()
    try:
        for line in driver.stdout:  # type: ignore[union-attr]
            lines.append(line)
            if line.startswith("Ray dashboard:"):
                break
    finally:
        timeout.cancel()
        stop()
        driver.wait()
    assert any(line.startswith(f"Ray dashboard: http://127.0.0.1:{port}") for line in lines), "".join(lines)[-3000:]
