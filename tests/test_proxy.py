"""The TCP fault proxy alone, in front of a real redis-server: forwarding, each toxic, the control API."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from flashlab.chaos.proxy.control import ProxyControl
from flashlab.system import procs
from flashlab.system.platforms.local import free_port

ROOT = Path(__file__).resolve().parent.parent


def _spawn(argv: list[str], name: str) -> procs.Tracked:
    """Every process goes through flashlab.system.procs: tracked by PID, reaped, checked at session end."""
    return procs.spawn(argv, name=name, cwd=ROOT)


def _stop(proc: procs.Tracked) -> int | None:
    """SIGTERM our own PID, SIGKILL after a bounded grace; returns the exit code."""
    return procs.terminate(proc.pid, grace=5.0)


def _wait(cond: object, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if cond():  # type: ignore[operator]
                return
        except Exception:
            pass
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


@dataclass
class ProxyRig:
    redis_port: int
    proxy_port: int
    control: ProxyControl
    proc: procs.Tracked

    def client(self, timeout: float = 2.0) -> redis.Redis:
        # One attempt per call: redis-py's default retries would blur what the proxy did.
        return redis.Redis(
            host="127.0.0.1",
            port=self.proxy_port,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 0),
        )


@pytest.fixture(scope="module")
def redis_port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    port = free_port()
    workdir = tmp_path_factory.mktemp("redis")
    proc = _spawn(
        [
            "redis-server",
            "--bind",
            "127.0.0.1",
            "--port",
            str(port),
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(workdir),
        ],
        "test-redis",
    )
    try:
        direct = redis.Redis(host="127.0.0.1", port=port, socket_timeout=1)
        _wait(direct.ping, 10, "redis-server")
        yield port
    finally:
        _stop(proc)


def _spawn_proxy(proxy_port: int, upstream_port: int, control_port: int) -> procs.Tracked:
    """The fault proxy as its own process, every address on loopback."""
    argv = [sys.executable, "-m", "flashlab.chaos.proxy", "--listen", f"127.0.0.1:{proxy_port}"]
    argv += ["--upstream", f"127.0.0.1:{upstream_port}", "--control", f"127.0.0.1:{control_port}"]
    return _spawn(argv, "test-proxy")


@pytest.fixture(scope="module")
def shared_rig(redis_port: int) -> Iterator[ProxyRig]:
    """One proxy process for the module (starting Python costs seconds on a busy machine)."""
    proxy_port, control_port = free_port(), free_port()
    proc = _spawn_proxy(proxy_port, redis_port, control_port)
    control = ProxyControl(f"http://127.0.0.1:{control_port}")
    try:
        control.wait_ready(timeout_s=15)
        yield ProxyRig(redis_port, proxy_port, control, proc)
    finally:
        control.close()
        code = _stop(proc)
    assert code == 0, "proxy did not exit cleanly on SIGTERM"


@pytest.fixture
def rig(shared_rig: ProxyRig) -> Iterator[ProxyRig]:
    """The shared proxy, with no toxic before or after the test."""
    shared_rig.control.clear()
    yield shared_rig
    shared_rig.control.clear()


def _rtt_ms(client: redis.Redis, n: int = 5) -> float:
    """Smallest of n PING round trips: the floor the toxic cannot go under."""
    best = float("inf")
    for _ in range(n):
        t = time.perf_counter()
        assert client.ping()
        best = min(best, (time.perf_counter() - t) * 1000)
    return best


def test_forwards_commands_and_counts_bytes(rig: ProxyRig) -> None:
    c = rig.client()
    assert c.ping()
    c.set("proxy:k", "v" * 1000)
    assert c.get("proxy:k") == b"v" * 1000
    stats = rig.control.stats()
    assert stats["connections_total"] >= 1
    assert stats["bytes_up"] > 1000 and stats["bytes_down"] > 1000
    assert stats["upstream"] == f"127.0.0.1:{rig.redis_port}"


@pytest.mark.parametrize(("direction", "legs"), [("down", 1), ("up", 1), ("both", 2)])
def test_latency_adds_at_least_the_configured_delay(
    rig: ProxyRig, direction: str, legs: int
) -> None:
    c = rig.client()
    rig.control.add("slow", "latency", direction, ms=150)
    # Correctness, not speed: every round trip must carry the delay on each toxic leg.
    assert _rtt_ms(c, 3) >= 150 * legs
    assert rig.control.remove("slow")
    # Removal restores plain forwarding on the same connection (a loopback PING is far below 150).
    assert _rtt_ms(c, 3) < 150


def test_jitter_stays_within_bounds_and_varies(rig: ProxyRig) -> None:
    c = rig.client()
    rig.control.add("jitter", "latency", "down", ms=40, jitter_ms=30, seed=7)
    samples = []
    for _ in range(12):
        t = time.perf_counter()
        c.ping()
        samples.append((time.perf_counter() - t) * 1000)
    assert min(samples) >= 10  # ms - jitter_ms is the floor
    assert max(samples) - min(samples) > 5  # seeded uniform jitter really varies


def test_reset_drops_live_connections_and_refuses_new_ones(rig: ProxyRig) -> None:
    c = rig.client()
    assert c.ping()
    before = rig.control.stats()["resets"]
    rig.control.add("drop", "reset", probability=1.0)
    assert rig.control.stats()["resets"] >= before + 1  # the live connection was aborted
    fresh = rig.client()
    with pytest.raises(redis.ConnectionError):
        fresh.ping()
    rig.control.remove("drop")
    assert rig.client().ping()


def test_reset_probability_zero_keeps_new_connections(rig: ProxyRig) -> None:
    rig.control.add("maybe", "reset", probability=0.0)
    assert rig.client().ping()


def test_blackhole_makes_client_time_out_then_removal_restores(rig: ProxyRig) -> None:
    rig.control.add("hole", "blackhole")
    c = rig.client(timeout=0.3)
    with pytest.raises(redis.TimeoutError):
        c.ping()
    with socket.create_connection(("127.0.0.1", rig.proxy_port), timeout=0.3) as raw:
        raw.sendall(b"PING\r\n")
        with pytest.raises(TimeoutError):
            raw.recv(16)
        assert rig.control.stats()["connections_active"] >= 1  # accepted, held, never answered
    rig.control.remove("hole")
    assert rig.client().ping()


def test_timeout_toxic_closes_the_connection(rig: ProxyRig) -> None:
    rig.control.add("cut", "timeout", ms=100)
    c = rig.client(timeout=3)
    with pytest.raises(redis.ConnectionError):
        c.ping()


def test_bandwidth_limits_throughput(rig: ProxyRig) -> None:
    direct = redis.Redis(host="127.0.0.1", port=rig.redis_port)
    direct.set("proxy:big", b"x" * 64 * 1024)
    rig.control.add("thin", "bandwidth", "down", kb_per_s=128)
    c = rig.client(timeout=5)
    t = time.perf_counter()
    assert len(c.get("proxy:big")) == 64 * 1024
    # 64 KiB at 128 KiB/s cannot arrive in less than half a second (minus one pacing slice).
    assert time.perf_counter() - t >= 0.45


def test_control_api_rejects_bad_toxics_with_the_field(rig: ProxyRig) -> None:
    http = rig.control.http
    r = http.post("/toxics", json={"name": "x", "type": "latency", "params": {"mss": 1}})
    assert r.status_code == 400 and r.json()["error"].startswith("params.mss")
    r = http.post("/toxics", json={"name": "x", "type": "nope"})
    assert r.status_code == 400 and r.json()["error"].startswith("type")
    r = http.post("/toxics", content=b"{not json")
    assert r.status_code == 400
    rig.control.add("dup", "latency", ms=1)
    r = http.post("/toxics", json={"name": "dup", "type": "latency"})
    assert r.status_code == 409
    assert http.delete("/toxics/missing").status_code == 404
    assert [t["name"] for t in rig.control.toxics()] == ["dup"]
    rig.control.clear()
    assert rig.control.toxics() == []


def test_upstream_down_closes_client_and_proxy_survives(redis_port: int) -> None:
    dead = free_port()  # nothing listens here
    proxy_port, control_port = free_port(), free_port()
    proc = _spawn_proxy(proxy_port, dead, control_port)
    control = ProxyControl(f"http://127.0.0.1:{control_port}")
    try:
        control.wait_ready(timeout_s=15)
        c = redis.Redis(
            host="127.0.0.1", port=proxy_port, socket_timeout=2, retry=Retry(NoBackoff(), 0)
        )
        with pytest.raises(redis.ConnectionError):
            c.ping()
        assert control.stats()["upstream_errors"] >= 1
    finally:
        control.close()
        _stop(proc)


def test_bad_flags_give_one_line_and_exit_2() -> None:
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "flashlab.chaos.proxy",
            "--listen",
            "nope",
            "--upstream",
            "127.0.0.1:1",
            "--control",
            "127.0.0.1:2",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert r.returncode == 2
    assert "--listen" in r.stderr and "Traceback" not in r.stderr


def test_control_client_raises_on_refusal(rig: ProxyRig) -> None:
    with pytest.raises(RuntimeError, match=r"params\.ms"):
        rig.control.add("bad", "latency", ms=-1)
    with pytest.raises(httpx.HTTPError):
        ProxyControl(f"http://127.0.0.1:{free_port()}").wait_ready(timeout_s=0.2)
