"""A two-node Ray cluster on this machine for tests: each node in a network namespace the test
creates (a veth pair 10.213.0.1 <-> 10.213.0.2, nothing on the host's interfaces), started with
Ray's own `ray start --block` and stopped by PID.

Why namespaces: `ray start --node-ip-address 127.0.0.1` is silently replaced by the machine's
interface address, and Ray's loopback-only mode (RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0) refuses a
second node. Inside a fresh namespace the only addresses are its loopback and the veth end the
test gave it, so every listener Ray opens (gcs_server and raylet bind `*`) is on addresses the
test owns, and the namespaces vanish with them.

The stack runs in the head namespace on its loopback (`flashlab stack up --detach`); shoppers on
the second node reach the same `http://127.0.0.1:PORT` through two relays (the lab's own TCP
proxy, no toxics): 127.0.0.1:PORT in the node namespace -> 10.213.0.1:PORT -> 127.0.0.1:PORT in
the head namespace. So the run's --target stays loopback on every node.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from typing import Any

import psutil
from support import poll

HEAD_IP = "10.213.0.1"
NODE_IP = "10.213.0.2"
GCS_PORT = 6379
PREFIX = 24
RELAY_CONTROL_PORT = 9107  # inside each fresh namespace; only the stack shares the head's ports
BIN = Path(sys.executable).parent
NODE_ATTEMPTS = 3
START_TIMEOUT_S = 120.0  # ray start pinned nowhere on 2 busy shared cores: ~10-30 s each


def _ip(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)


def netns_unavailable() -> str | None:
    """Why this machine cannot host the test's namespaces (None: it can)."""
    if shutil.which("ip") is None:
        return "`ip` (iproute2) not installed: scripts/bootstrap.sh --test installs it"
    probe = f"flrc-probe-{secrets.token_hex(3)}"
    made = _ip("netns", "add", probe)
    if made.returncode != 0:
        return f"cannot create a network namespace (`ip netns add`: {made.stderr.strip()})"
    _ip("netns", "del", probe)
    return None


@dataclass
class Namespaces:
    """Two namespaces joined by a veth pair; `remove()` deletes both (and with them the veths)."""

    tag: str = field(default_factory=lambda: secrets.token_hex(3))

    @property
    def head(self) -> str:
        return f"flrc-h-{self.tag}"

    @property
    def node(self) -> str:
        return f"flrc-n-{self.tag}"

    def create(self) -> None:
        veth_h, veth_n = f"flh{self.tag}", f"fln{self.tag}"  # <= 15 characters
        steps = [
            ("netns", "add", self.head),
            ("netns", "add", self.node),
            ("link", "add", veth_h, "type", "veth", "peer", "name", veth_n),
            ("link", "set", veth_h, "netns", self.head),
            ("link", "set", veth_n, "netns", self.node),
            ("-n", self.head, "addr", "add", f"{HEAD_IP}/{PREFIX}", "dev", veth_h),
            ("-n", self.node, "addr", "add", f"{NODE_IP}/{PREFIX}", "dev", veth_n),
            ("-n", self.head, "link", "set", veth_h, "up"),
            ("-n", self.node, "link", "set", veth_n, "up"),
            ("-n", self.head, "link", "set", "lo", "up"),
            ("-n", self.node, "link", "set", "lo", "up"),
        ]
        for step in steps:
            done = _ip(*step)
            if done.returncode != 0:
                raise RuntimeError(f"ip {' '.join(step)}: {done.stderr.strip()}")

    def remove(self) -> None:
        for ns in (self.head, self.node):
            _ip("netns", "del", ns)  # the veth pair goes with its namespaces

    def listed(self) -> set[str]:
        names = {line.split()[0] for line in _ip("netns", "list").stdout.splitlines() if line}
        return names & {self.head, self.node}


@dataclass
class Cluster:
    """A running two-node cluster plus the processes the test started (all reaped by `stop`)."""

    ns: Namespaces
    root: Path  # short temp dir: Ray's socket paths must stay < 107 bytes
    env: dict[str, str]
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    stack: dict[str, Any] = field(default_factory=dict)  # start_stack(): base_url, tokens, PIDs

    @property
    def address(self) -> str:
        return f"{HEAD_IP}:{GCS_PORT}"

    def exec_argv(self, ns: str, *argv: str) -> list[str]:
        return ["ip", "netns", "exec", ns, *argv]

    def spawn(self, ns: str, log: str, *argv: str) -> subprocess.Popen[bytes]:
        out = open(self.root / log, "wb")  # noqa: SIM115 - closed with the process
        proc = subprocess.Popen(
            self.exec_argv(ns, *argv),
            stdout=out,
            stderr=subprocess.STDOUT,
            env=self.env,
            cwd=self.root,
            start_new_session=True,
        )
        out.close()
        self.procs.append(proc)
        return proc

    def run(self, ns: str, *argv: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.exec_argv(ns, *argv),
            capture_output=True,
            text=True,
            env=self.env,
            cwd=self.root,
            timeout=timeout,
        )

    def start_node(self, ns: str, name: str, *args: str) -> None:
        """`ray start --block` for node `name`, retried when Ray's fixed 30 s wait for its raylet
        runs out (seen on this busy 2-core machine); a failed attempt's processes are killed."""
        for attempt in range(1, NODE_ATTEMPTS + 1):
            proc = self._spawn_node(ns, name, attempt, *args)
            log = self.root / f"{name}-{attempt}.log"
            poll(
                lambda log=log, proc=proc: (
                    "block forever" in log.read_text(errors="replace") or proc.poll()
                ),
                f"ray start ({name})",
                START_TIMEOUT_S,
            )
            if proc.poll() is None:
                return
            self.kill_matching(str(self.root / name))
            if attempt == NODE_ATTEMPTS:
                raise RuntimeError(f"ray start ({name}) exited: {log.read_text(errors='replace')}")

    def _spawn_node(self, ns: str, name: str, attempt: int, *args: str) -> subprocess.Popen[bytes]:
        return self.spawn(
            ns,
            f"{name}-{attempt}.log",
            str(BIN / "ray"),
            "start",
            "--block",
            "--num-cpus",
            "1",
            "--object-store-memory",
            str(80 * 1024**2),
            "--temp-dir",
            str(self.root / name),
            "--disable-usage-stats",
            *args,
        )

    def kill_matching(self, text: str) -> None:
        """SIGKILL processes whose command line holds `text` (a path only we use)."""
        found = [
            p for p in psutil.process_iter(["cmdline"]) if text in " ".join(p.info["cmdline"] or [])
        ]
        for proc in found:
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.kill()
        psutil.wait_procs(found, timeout=10)

    def ray_pids(self, name: str) -> dict[str, int]:
        """raylet/gcs_server PIDs of node `name` (a child of its `ray start --block`)."""
        found: dict[str, int] = {}
        for proc in self.procs:
            with contextlib.suppress(psutil.NoSuchProcess):
                if f"{self.root / name}" not in " ".join(psutil.Process(proc.pid).cmdline()):
                    continue
                for child in psutil.Process(proc.pid).children(recursive=True):
                    found.setdefault(child.name(), child.pid)
        return found

    def stop(self) -> list[str]:
        """SIGTERM everything we started (newest first), SIGKILL stragglers; what was left."""
        tree: list[psutil.Process] = []
        for proc in reversed(self.procs):
            with contextlib.suppress(psutil.NoSuchProcess):
                root = psutil.Process(proc.pid)
                tree += [root, *root.children(recursive=True)]
        for proc in tree:
            with contextlib.suppress(psutil.NoSuchProcess):
                if proc.pid in {p.pid for p in self.procs}:
                    proc.terminate()
        _, alive = psutil.wait_procs(tree, timeout=30)
        for proc in alive:
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.kill()
        psutil.wait_procs(alive, timeout=10)
        for proc in self.procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)
        return [f"{p.pid} {p.name()}" for p in alive] + self.strays()

    def strays(self) -> list[str]:
        """Processes anywhere whose command line names our temp dir (Ray daemons, workers)."""
        left = []
        for proc in psutil.process_iter(["cmdline", "name"]):
            cmd = " ".join(proc.info["cmdline"] or [])
            if str(self.root) in cmd:
                left.append(f"{proc.pid} {proc.info['name']}")
        return left


def start_cluster() -> Cluster:
    """Namespaces, then the head, then the second node (its own resources and temp dir)."""
    ns = Namespaces()
    root = Path(tempfile.mkdtemp(prefix="flrc-", dir="/tmp"))
    token = root / "auth_token"
    token.write_text(secrets.token_hex(32))
    token.chmod(0o600)
    env = dict(os.environ)
    env.pop("RAY_ADDRESS", None)
    # Token auth with the token in our dir (never ~/.ray); the driver (flashlab run) inherits it.
    env.update(
        RAY_AUTH_MODE="token",
        RAY_AUTH_TOKEN_PATH=str(token),
        RAY_USAGE_STATS_ENABLED="0",
        # A lost node is noticed in ~10-25 s instead of Ray's ~65 s worst case; not tighter: with
        # 1 s checks a busy machine's fresh raylet was declared dead while it registered.
        RAY_health_check_period_ms="2000",
        RAY_health_check_timeout_ms="5000",
        RAY_health_check_failure_threshold="5",
    )
    cluster = Cluster(ns, root, env)
    ns.create()
    try:
        cluster.start_node(
            ns.head,
            "head",
            "--head",
            "--node-ip-address",
            HEAD_IP,
            "--port",
            str(GCS_PORT),
            "--include-dashboard",
            "false",
        )
        cluster.start_node(
            ns.node,
            "node",
            "--address",
            cluster.address,
            "--node-ip-address",
            NODE_IP,
            "--resources",
            json.dumps({"flashlab_node": 1}),
        )
    except BaseException:
        stop_cluster(cluster)
        raise
    return cluster


def stop_cluster(cluster: Cluster) -> list[str]:
    """Stop every process, delete the namespaces and the temp dir; what was left over."""
    try:
        left = cluster.stop()
    finally:
        cluster.ns.remove()
    shutil.rmtree(cluster.root, ignore_errors=True)
    return left


def start_stack(cluster: Cluster) -> dict[str, Any]:
    """A detached stack in the head namespace plus the relays that make its nginx port loopback
    on the second node too; the stack info (base_url, redis_url, admin_token, supervisor_pid)."""
    state = cluster.root / "stack"
    up = cluster.run(
        cluster.ns.head,
        str(BIN / "flashlab"),
        "stack",
        "up",
        "--detach",
        "--json",
        "--no-prometheus",
        "--state-dir",
        str(state),
    )
    if up.returncode != 0:
        raise RuntimeError(f"stack up: {up.stderr or up.stdout}")
    info = json.loads(up.stdout)
    port = info["base_url"].rsplit(":", 1)[1]
    proxy = [str(BIN / "python"), "-m", "flashlab.chaos.proxy"]
    cluster.spawn(
        cluster.ns.head,
        "relay-head.log",
        *proxy,
        *("--listen", f"{HEAD_IP}:{port}", "--upstream", f"127.0.0.1:{port}"),
        *("--control", f"127.0.0.1:{RELAY_CONTROL_PORT}"),
    )
    cluster.spawn(
        cluster.ns.node,
        "relay-node.log",
        *proxy,
        *("--listen", f"127.0.0.1:{port}", "--upstream", f"{HEAD_IP}:{port}"),
        *("--control", f"127.0.0.1:{RELAY_CONTROL_PORT}"),
    )
    probe = [str(BIN / "python"), "-c", f"import httpx; httpx.get('{info['base_url']}/readyz')"]
    poll(lambda: cluster.run(cluster.ns.node, *probe).returncode == 0, "relay to the stack", 60)
    return info


def stop_stack(cluster: Cluster) -> None:
    cluster.run(
        cluster.ns.head,
        str(BIN / "flashlab"),
        "stack",
        "down",
        "--state-dir",
        str(cluster.root / "stack"),
    )
