"""Ray start-up for the study commands: token authentication, a local instance or a cluster to join.

Token authentication stays on in every process we start. Ray caches `RAY_AUTH_MODE` when it is
imported, and a local `ray.init()` only creates `~/.ray/auth_token` when it sees token mode, so
`use_token_auth` must run before `ray.init` whatever imported Ray first."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from platform.errors import UsageError

REPO = Path(__file__).resolve().parents[1]
AUTH_MODE = "RAY_AUTH_MODE"
WORKER_START_TIMEOUT = "RAY_TRAIN_WORKER_GROUP_START_TIMEOUT_S"
TOKEN_HINT = (
    "set RAY_AUTH_TOKEN to the cluster's token, or put it in ~/.ray/auth_token "
    "(or a file named by RAY_AUTH_TOKEN_PATH); on the head node `ray get-auth-token` prints it"
)


def use_token_auth() -> str:
    """Token mode for this process and its children unless the user chose a mode; returns the mode."""
    os.environ.setdefault(AUTH_MODE, "token")
    if "ray" in sys.modules:  # Ray read the mode when imported: make it read it again
        from ray._raylet import Config  # type: ignore[attr-defined]  # what Ray's own _enable_token_auth calls

        Config.initialize("")
    return os.environ[AUTH_MODE]


def token_available() -> bool:
    """Whether this process can present a token: RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH or ~/.ray/auth_token."""
    if os.environ.get("RAY_AUTH_TOKEN", "").strip():
        return True
    path = Path(os.environ.get("RAY_AUTH_TOKEN_PATH", "") or Path.home() / ".ray" / "auth_token")
    try:
        return bool(path.read_text().strip())
    except OSError:
        return False


def cluster_address(address: str | None) -> str | None:
    """The cluster to join: --address, else RAY_ADDRESS, else None (start a local instance)."""
    return address or os.environ.get("RAY_ADDRESS") or None


def start_ray(address: str | None) -> str:
    """Start a local Ray instance (or join `address`/RAY_ADDRESS) with token auth; return the dashboard URL.

    Raises UsageError (one line, exit 2) when joining a cluster without a usable token."""
    mode = use_token_auth()
    import ray
    from ray.exceptions import AuthenticationError

    pythonpath = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)
    # PYTHONPATH puts the repo before the standard library in workers, so `platform` is ours there too.
    # Ray Train gives a worker group 60 s to start; on a loaded 2-core machine importing torch in
    # a fresh worker can take longer, and a trial would fail for that alone.
    start = os.environ.get(WORKER_START_TIMEOUT, "300")
    runtime_env = {"env_vars": {"PYTHONPATH": pythonpath, AUTH_MODE: mode, WORKER_START_TIMEOUT: start}}
    address = cluster_address(address)
    if address and mode == "token" and not token_available():
        raise UsageError(f"joining the Ray cluster at {address} needs its authentication token: {TOKEN_HINT}")
    try:
        if address:
            context = ray.init(address=address, runtime_env=runtime_env, log_to_driver=False)
        else:
            # "local": without it ray.init joins the last `ray start` cluster of this machine (and
            # refuses num_cpus there), though the user asked for neither --address nor RAY_ADDRESS.
            context = ray.init(
                address="local",
                num_cpus=os.cpu_count(),
                include_dashboard=True,
                dashboard_host="127.0.0.1",
                dashboard_port=int(os.environ.get("STUDY_DASHBOARD_PORT", 8265)),
                object_store_memory=512 * 1024**2,
                runtime_env=runtime_env,
                log_to_driver=False,
            )
    except AuthenticationError:
        where = f"the Ray cluster at {address}" if address else "the local Ray instance"
        raise UsageError(f"{where} refused the authentication token: {TOKEN_HINT}") from None
    except ConnectionError as exc:
        # A wrong token looks the same from here (Ray logs InvalidAuthToken and gives up connecting).
        raise UsageError(
            f"cannot join the Ray cluster at {address} ({str(exc).splitlines()[0]}): is it running, "
            f"and is the token right? {TOKEN_HINT}"
        ) from None
    url = context.dashboard_url or ""
    return url if url.startswith("http") or not url else f"http://{url}"


def cluster_capacity() -> tuple[float, float]:
    """(CPUs of the whole cluster, CPUs of its largest alive node)."""
    import ray

    nodes = [n for n in ray.nodes() if n.get("Alive")]
    largest = max((n["Resources"].get("CPU", 0.0) for n in nodes), default=0.0)
    return float(ray.cluster_resources().get("CPU", 0.0)), float(largest)


def stop_ray() -> None:
    if "ray" in sys.modules:
        import ray

        if ray.is_initialized():
            ray.shutdown()
