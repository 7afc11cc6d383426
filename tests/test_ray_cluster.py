"""`flashlab run --engine ray --ray-address ADDR` against a real two-node Ray cluster started with
`ray start` (tests/raycluster.py: one network namespace per node), plus Ray's bad-input cases.

Attached runs: actors spread over both nodes (manifest engine.actors), the same shoppers as an
inline run of the same seed, sold == stock with no anomaly, and a node lost mid-run ending its
unfinished shoppers as `info` rows. Bad input: one line, exit 2, nothing that looks complete.
"""

from __future__ import annotations

import json
import platform
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import psutil
import pytest
import raycluster
import yaml
from support import poll

from flashlab.core.errors import EXIT_BAD_INPUT
from flashlab.core.errors import UserError
from flashlab.simulator.engines.ray_engine import check_reachable
from flashlab.simulator.engines.ray_engine import version_mismatch_line

pytestmark = pytest.mark.ray_cluster

EXPERIMENT: dict[str, Any] = {
    "name": "ray-cluster",
    "seed": 11,
    "product": {"id": "raycluster", "stock": 100, "strategy": "lua"},
    "stack": {"prometheus": False},
    "scenario": {
        "shoppers": 400,
        "model": "open",
        "arrival": {"kind": "spike", "window_s": 1.0},
        "duration_s": 30,
        "request_timeout_s": 5,
    },
    "engine": {"kind": "ray", "workers": 2, "connections": 64, "client": "raw"},
    "hypothesis": [
        "oversell == 0",
        "lost_acknowledged == 0",
        "duplicate_purchases == 0",
        "phantom_orders == 0",
    ],
}


@pytest.fixture(scope="module")
def cluster() -> Iterator[raycluster.Cluster]:
    why = raycluster.netns_unavailable()
    if why is not None:
        pytest.skip(why)
    made = raycluster.start_cluster()
    supervisor = None
    try:
        made.stack = raycluster.start_stack(made)
        supervisor = made.stack["supervisor_pid"]
        yield made
    finally:
        raycluster.stop_stack(made)
        left = raycluster.stop_cluster(made)
        assert not left, f"processes left behind: {left}"
        assert not made.ns.listed(), "network namespaces left behind"
        assert supervisor is None or not psutil.pid_exists(supervisor), "stack supervisor left"


def _write_experiment(path: Path, **changes: Any) -> Path:
    data = json.loads(json.dumps(EXPERIMENT))
    for dotted, value in changes.items():
        node = data
        *parents, leaf = dotted.split("__")
        for part in parents:
            node = node[part]
        node[leaf] = value
    path.write_text(yaml.safe_dump(data))
    return path


def _run_argv(cluster: raycluster.Cluster, exp: Path, out: Path, *extra: str) -> list[str]:
    """`flashlab run EXP` against the cluster's stack, as the head namespace runs it."""
    flashlab = str(raycluster.BIN / "flashlab")
    args = ["run", str(exp), "--out", str(out), "--no-report", "--json"]
    return [flashlab, *args, *_target_args(cluster), *extra]


def _flashlab_run(
    cluster: raycluster.Cluster, exp: Path, out: Path, *extra: str
) -> subprocess.CompletedProcess[str]:
    return cluster.run(cluster.ns.head, *_run_argv(cluster, exp, out, *extra))


def _shoppers(run_dir: Path) -> set[tuple[int, str, str]]:
    history = pd.read_parquet(run_dir / "history.parquet")
    return set(history[["shopper", "user_id", "profile"]].drop_duplicates().itertuples(index=False))


def test_two_nodes_spread_the_shoppers_and_match_an_inline_run(
    cluster: raycluster.Cluster, tmp_path: Path
) -> None:
    exp = _write_experiment(tmp_path / "exp.yaml")
    ray_dir, inline_dir = tmp_path / "ray", tmp_path / "inline"
    done = _flashlab_run(cluster, exp, ray_dir, "--engine", "ray", "--ray-address", cluster.address)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout)
    manifest = json.loads((ray_dir / "manifest.json").read_text())
    assert manifest["complete"] is True
    actors = manifest["engine"]["actors"]
    assert [a["worker"] for a in actors] == ["ray-0", "ray-1"]
    assert {a["node_ip"] for a in actors} == {raycluster.HEAD_IP, raycluster.NODE_IP}
    assert len({a["node_id"] for a in actors}) == 2
    assert all(a["pid"] > 0 for a in actors)
    assert sum(a["shoppers"] for a in actors) == EXPERIMENT["scenario"]["shoppers"]
    assert summary["sold"] == EXPERIMENT["product"]["stock"] == summary["stock_initial"]
    for key in ("oversell", "lost_acknowledged", "duplicate_purchases", "phantom_orders"):
        assert summary[key] == 0, key
    history = pd.read_parquet(ray_dir / "history.parquet")
    assert set(history["worker"]) == {"ray-0", "ray-1"}  # both nodes reached the stack

    done = _flashlab_run(cluster, exp, inline_dir, "--engine", "inline")
    assert done.returncode == 0, done.stderr[-3000:]
    assert _shoppers(ray_dir) == _shoppers(inline_dir)
    assert len(_shoppers(ray_dir)) == EXPERIMENT["scenario"]["shoppers"]


def test_a_cluster_too_small_for_the_actors_is_bad_input(
    cluster: raycluster.Cluster, tmp_path: Path
) -> None:
    exp = _write_experiment(tmp_path / "exp.yaml", engine__workers=5)
    out = tmp_path / "run"
    done = _flashlab_run(cluster, exp, out, "--ray-address", cluster.address)
    assert done.returncode == EXIT_BAD_INPUT, done.stderr[-3000:]
    lines = _error_lines(done.stderr)
    assert len(lines) == 1 and "--ray-address" in lines[0] and "CPU" in lines[0], done.stderr
    assert "Traceback" not in done.stderr
    assert json.loads((out / "manifest.json").read_text())["complete"] is False


def test_losing_a_node_mid_run_turns_its_shoppers_into_info_rows(
    cluster: raycluster.Cluster, tmp_path: Path
) -> None:
    # ~6 s of arrivals: the node dies with most of its shoppers still to come.
    exp = _write_experiment(
        tmp_path / "exp.yaml",
        scenario__arrival={"kind": "poisson", "rate_per_s": 100},
        scenario__shoppers=600,
        product__stock=1000,
    )
    out = tmp_path / "run"
    relay_log = cluster.root / "relay-node.log"
    argv = cluster.exec_argv(
        cluster.ns.head, *_run_argv(cluster, exp, out, "--ray-address", cluster.address)
    )
    proc = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cluster.env
    )
    try:
        # The node's shoppers are under way once its relay has carried traffic to the stack.
        sent = _relay_bytes_up(cluster)
        poll(lambda: _relay_bytes_up(cluster) > sent + 4096, "load on the second node", 180)
        raylet = cluster.ray_pids("node")["raylet"]
        psutil.Process(raylet).kill()
        stdout, stderr = proc.communicate(timeout=240)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert relay_log.exists()
    assert proc.returncode in (0, 1), stderr[-3000:]
    summary = json.loads(stdout)
    manifest = json.loads((out / "manifest.json").read_text())
    lost_worker = next(
        a["worker"] for a in manifest["engine"]["actors"] if a["node_ip"] == raycluster.NODE_IP
    )
    assert manifest["engine"]["lost_workers"] == [int(lost_worker.rsplit("-", 1)[1])]
    history = pd.read_parquet(out / "history.parquet")
    lost = history[history["error"] == "worker lost"]
    assert len(lost) > 0 and set(lost["worker"]) == {lost_worker}
    assert (lost["type"] == "info").all()
    assert summary["oversell"] == 0 and summary["lost_acknowledged"] == 0


def _target_args(cluster: raycluster.Cluster) -> list[str]:
    stack = cluster.stack
    return [
        "--target",
        stack["base_url"],
        "--redis",
        stack["redis_url"],
        "--admin-token",
        stack["admin_token"],
    ]


def _relay_bytes_up(cluster: raycluster.Cluster) -> int:
    """Request bytes the second node's relay has carried (its control API, in its namespace)."""
    url = f"http://127.0.0.1:{raycluster.RELAY_CONTROL_PORT}/stats"
    code = f"import httpx; print(httpx.get('{url}').json()['bytes_up'])"
    done = cluster.run(cluster.ns.node, str(raycluster.BIN / "python"), "-c", code, timeout=30)
    return int(done.stdout.strip() or 0) if done.returncode == 0 else 0


# --- bad input without a cluster ---------------------------------------------------------------


def _error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error:")]


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])  # closed again when the block ends: refused


def test_unreachable_ray_address_is_one_line_exit_2_and_no_run_dir(tmp_path: Path) -> None:
    exp = _write_experiment(tmp_path / "exp.yaml")
    out = tmp_path / "run"
    address = f"127.0.0.1:{_closed_port()}"
    done = subprocess.run(
        [
            str(raycluster.BIN / "flashlab"),
            "run",
            str(exp),
            "--out",
            str(out),
            "--ray-address",
            address,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == EXIT_BAD_INPUT
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: --ray-address"), lines
    assert address in lines[0] and "Traceback" not in done.stderr
    assert not out.exists()  # refused before the run directory (and the stack) existed


@pytest.mark.parametrize("address", ["ray://10.0.0.1:10001", "no-port", "host:port"])
def test_malformed_ray_address_is_refused(address: str) -> None:
    with pytest.raises(UserError, match="--ray-address"):
        check_reachable(address)


def test_version_mismatch_becomes_one_line() -> None:
    # A fake cluster version (no second Ray version is installable here): Ray's own check
    # produces the message, ours turns it into the one line the CLI prints.
    from ray._private.utils import check_version_info

    with pytest.raises(RuntimeError) as caught:
        check_version_info(
            {"ray_version": "0.0.1-fake", "python_version": platform.python_version()}, "test"
        )
    line = version_mismatch_line(str(caught.value))
    assert line is not None and "\n" not in line
    assert "0.0.1-fake" in line and "--ray-address" in line
    import ray

    assert ray.__version__ in line
    assert version_mismatch_line("some other failure") is None
