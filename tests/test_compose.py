"""Tests of the Docker Compose platform: offline images, a real stack of containers, faults, teardown.

The `compose` tests need a Docker engine and FAIL (never skip) without one: `make test` runs
scripts/ensure-docker.sh first. They share one stack (module scope) and run in file order; the
last one tears it down and checks that nothing of the project is left. The unmarked tests check
the pure parts (compose derivation, input validation, the container entrypoint's errors).
"""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Callable
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import support
import yaml

from flashlab.core.contract import BUY_PATH
from flashlab.core.contract import USER_HEADER
from flashlab.core.contract import ResetRequest
from flashlab.core.contract import Strategy
from flashlab.core.platform import StackConfig
from flashlab.core.platform import StackInfo
from flashlab.system.admin import AdminClient
from flashlab.system.platforms.compose import PROJECT_LABEL
from flashlab.system.platforms.compose import ComposePlatform
from flashlab.system.platforms.compose_cli import find_compose
from flashlab.system.platforms.compose_entry import main
from flashlab.system.platforms.compose_file import COMPOSE_FILE
from flashlab.system.platforms.compose_file import derive_compose
from flashlab.system.platforms.images import REPO_ROOT
from flashlab.system.truth import read_truth

DEADLINE_S = 30.0  # bound on every wait below; polls return as soon as the condition holds


def poll(condition: Callable[[], object], what: str) -> None:
    support.poll(condition, what, DEADLINE_S)


def _docker() -> Any:
    import docker

    try:
        client = docker.from_env(timeout=30)
        client.ping()
        return client
    except Exception as exc:  # any failure to reach the engine: report it as one line
        reason = f"{exc.__class__.__name__}: {exc}"
    # Outside the except block, so pytest prints one line, not a chained traceback. FAIL, not
    # skip: a CI machine without an engine must not pass silently.
    pytest.fail(
        f"no Docker engine answers ({reason}); run scripts/ensure-docker.sh (make test does)",
        pytrace=False,
    )


def _buy(base_url: str, user: str, product: str) -> httpx.Response:
    return httpx.post(
        f"{base_url}{BUY_PATH}", headers={USER_HEADER: user}, json={"productId": product}, timeout=5
    )


# --- pure parts (no engine needed) ---------------------------------------------------------------


def test_derived_compose_has_one_service_per_worker() -> None:
    base = yaml.safe_load(COMPOSE_FILE.read_text())
    doc = derive_compose(base, 3)
    apis = sorted(s for s in doc["services"] if s.startswith("api-"))
    assert apis == ["api-0", "api-1", "api-2"]
    assert [doc["services"][a]["environment"]["FLASHLAB_WORKER_ID"] for a in apis] == apis
    assert doc["services"]["nginx"]["depends_on"] == apis
    assert "x-api" not in doc  # the anchor holder is expanded away
    assert doc["services"]["api-0"]["restart"] == "always"  # respawned like the local supervisor
    assert doc["services"]["redis"]["restart"] == "no"  # crashes are experiments


def test_every_published_port_is_loopback_only() -> None:
    base = yaml.safe_load(COMPOSE_FILE.read_text())
    published = [p for s in base["services"].values() for p in s.get("ports", [])]
    assert published, "nginx, redis and prometheus publish ports"
    assert all(str(p).startswith("127.0.0.1:") for p in published), published


@pytest.mark.parametrize(
    ("config", "field"),
    [(StackConfig(workers=0), "workers"), (StackConfig(durability="fsync"), "durability")],  # type: ignore[arg-type]
)
def test_bad_config_is_one_clear_error(config: StackConfig, field: str) -> None:
    with pytest.raises(ValueError, match=field):
        ComposePlatform(config)


def test_container_entrypoint_names_the_bad_variable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("FLASHLAB_DURABILITY", "sometimes")
    assert main(["exec", "redis"]) == 2
    assert "FLASHLAB_DURABILITY" in capsys.readouterr().err
    monkeypatch.setenv("FLASHLAB_UPSTREAMS", " , ")
    assert main(["exec", "nginx"]) == 2
    assert "FLASHLAB_UPSTREAMS" in capsys.readouterr().err
    assert main(["exec", "mysql"]) == 2
    assert "usage" in capsys.readouterr().err


@pytest.mark.compose
def test_compose_file_is_valid_for_compose() -> None:
    env = {"FLASHLAB_ADMIN_TOKEN": "t", "PATH": "/usr/bin:/bin:/usr/local/bin"}
    for profiles in ("", "proxy,metrics,dashboards"):
        done = subprocess.run(
            [*find_compose().argv, "-f", str(COMPOSE_FILE), "config", "-q"],
            cwd=REPO_ROOT,
            env={**env, "COMPOSE_PROFILES": profiles},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr


# --- a real stack ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def stack() -> Iterator[tuple[ComposePlatform, StackInfo]]:
    """2 workers, AOF always (so a Redis SIGKILL keeps acknowledged orders), prometheus on.

    Builds the images first when they are missing or older than the tree (warm: layer cache)."""
    _docker()
    platform = ComposePlatform(
        StackConfig(workers=2, durability="aof-always", prometheus=True, proxy=False)
    )
    try:
        t0 = time.monotonic()
        info = platform.start()
        print(f"\ncompose stack {info.extra['project']} up in {time.monotonic() - t0:.1f}s")
        yield platform, info
    finally:
        platform.stop()


@pytest.mark.compose
def test_components_run_and_publish_on_loopback_only(
    stack: tuple[ComposePlatform, StackInfo],
) -> None:
    platform, info = stack
    names = [c.name for c in platform.components()]
    assert names == ["redis", "api-0", "api-1", "nginx", "prometheus"]
    assert all(c.running and c.container for c in platform.components())
    client = _docker()
    for component in platform.components():
        ports = client.containers.get(component.container).ports
        bindings = [b for bs in ports.values() if bs for b in bs]
        assert all(b["HostIp"] == "127.0.0.1" for b in bindings), (component.name, bindings)
    assert httpx.get(f"{info.base_url}/healthz", timeout=5).status_code == 200
    # Which Compose ran it (here docker-compose v1 unless the v2 plugin answers), for the manifest.
    assert info.extra["compose"] == find_compose().record()
    assert info.extra["compose"]["command"] in ("docker compose", "docker-compose")


@pytest.mark.compose
def test_buy_through_nginx_matches_redis_truth(stack: tuple[ComposePlatform, StackInfo]) -> None:
    _, info = stack
    with AdminClient(info.base_url, info.admin_token) as admin:
        admin.reset(ResetRequest(productId="cmp-1", stock=5, strategy=Strategy.lua))
    answers = {f"u{i}": _buy(info.base_url, f"u{i}", "cmp-1") for i in range(8)}
    statuses = sorted(r.status_code for r in answers.values())
    assert statuses == [200] * 5 + [410] * 3
    assert {r.json()["code"] for r in answers.values() if r.status_code == 410} == {"sold_out"}
    truth = read_truth(info.redis_url, "cmp-1")
    winners = sorted(u for u, r in answers.items() if r.status_code == 200)
    assert truth.stock_initial == 5 and truth.stock_remaining == 0
    assert truth.buyers == winners
    assert sorted(o.order_id for o in truth.orders) == sorted(
        answers[u].json()["orderId"] for u in winners
    )


@pytest.mark.compose
def test_redis_sigkill_stays_down_then_restarts_with_acknowledged_orders(
    stack: tuple[ComposePlatform, StackInfo],
) -> None:
    platform, info = stack
    with AdminClient(info.base_url, info.admin_token) as admin:
        admin.reset(ResetRequest(productId="cmp-2", stock=10, strategy=Strategy.lua))
    acked = [u for u in ("a", "b", "c") if _buy(info.base_url, u, "cmp-2").status_code == 200]
    assert acked == ["a", "b", "c"]

    platform.signal("redis", signal.SIGKILL)
    redis_down = lambda: not _component(platform, "redis").running  # noqa: E731
    poll(redis_down, "redis container exited after SIGKILL")
    answer = _buy(info.base_url, "d", "cmp-2")
    assert answer.status_code == 503 and answer.json()["code"] == "backend_unavailable"
    assert _component(platform, "redis").restarts == 0  # Docker did not restart it by itself

    restarted = platform.start_component("redis")
    assert restarted.running and restarted.restarts == 1  # counted like the local supervisor
    with AdminClient(info.base_url, info.admin_token) as admin:
        admin.wait_ready(timeout_s=DEADLINE_S)
    truth = read_truth(info.redis_url, "cmp-2")  # same published port after the restart
    assert truth.buyers == ["a", "b", "c"]  # appendfsync always: nothing acknowledged is lost
    assert truth.stock_remaining == 7


@pytest.mark.compose
def test_killed_api_worker_is_respawned(stack: tuple[ComposePlatform, StackInfo]) -> None:
    platform, info = stack
    before = _component(platform, "api-0").restarts
    platform.signal("api-0", signal.SIGKILL)
    respawned = lambda: _component(platform, "api-0").restarts > before  # noqa: E731
    poll(respawned, "api-0 restarted by Docker's restart policy")
    seen: set[str] = set()

    def both_workers_answer() -> bool:
        response = httpx.get(f"{info.base_url}/readyz", timeout=2)
        if response.status_code == 200:
            seen.add(response.json()["worker"])
        return seen >= {"api-0", "api-1"}

    poll(both_workers_answer, "both workers answer /readyz through nginx")


@pytest.mark.compose
def test_paused_redis_answers_503_then_recovers(stack: tuple[ComposePlatform, StackInfo]) -> None:
    platform, info = stack
    with AdminClient(info.base_url, info.admin_token) as admin:
        admin.reset(ResetRequest(productId="cmp-3", stock=3, strategy=Strategy.lua))
        platform.signal("redis", signal.SIGSTOP)
        try:
            assert not _component(platform, "redis").running
            answer = _buy(info.base_url, "p", "cmp-3")  # the API's Redis timeout is 500 ms
            assert answer.status_code == 503 and answer.json()["code"] == "backend_unavailable"
        finally:
            platform.signal("redis", signal.SIGCONT)
        admin.wait_ready(timeout_s=DEADLINE_S)
    assert _buy(info.base_url, "q", "cmp-3").status_code == 200


def _purchases_total(text: str) -> float:
    from prometheus_client.parser import text_string_to_metric_families

    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        if family.name == "flashlab_purchases"
        for sample in family.samples
        if sample.name == "flashlab_purchases_total"
    )


@pytest.mark.compose
def test_every_worker_reports_the_whole_stacks_purchases(
    stack: tuple[ComposePlatform, StackInfo],
) -> None:
    """Containers share one multiprocess dir (files named by worker, not PID), so /metrics from
    any worker counts the purchases every worker made - what the run's reconciliation relies on."""
    _, info = stack
    with httpx.Client(base_url=info.base_url, timeout=5) as client:
        before = {_purchases_total(client.get("/metrics").text) for _ in range(4)}
        assert len(before) == 1, before  # both workers agree before
        with AdminClient(info.base_url, info.admin_token) as admin:
            admin.reset(ResetRequest(productId="cmp-metrics", stock=50, strategy=Strategy.lua))
        workers = set()
        for i in range(12):  # round robin across both workers
            r = client.post(
                BUY_PATH, json={"productId": "cmp-metrics"}, headers={USER_HEADER: f"m{i}"}
            )
            assert r.status_code == 200, r.text
        for _ in range(6):
            ready = client.get("/readyz").json()
            workers.add(ready.get("worker"))
        assert workers == {"api-0", "api-1"}
        after = {_purchases_total(client.get("/metrics").text) for _ in range(6)}
    assert after == {before.pop() + 12}, after  # every worker's answer is the stack total


@pytest.mark.compose
def test_prometheus_scrapes_the_stack_through_nginx(
    stack: tuple[ComposePlatform, StackInfo],
) -> None:
    _, info = stack
    assert info.prometheus_url

    def up() -> bool:
        try:
            body = httpx.get(f"{info.prometheus_url}/api/v1/targets", timeout=2).json()
        except (httpx.HTTPError, ValueError):
            return False
        health = {t["labels"]["instance"]: t["health"] for t in body["data"]["activeTargets"]}
        return health == {"nginx:80": "up"}

    poll(up, "prometheus scrapes the stack through nginx")


@pytest.mark.compose
def test_stop_removes_every_container_network_and_volume(
    stack: tuple[ComposePlatform, StackInfo],
) -> None:
    platform, info = stack
    project = info.extra["project"]
    platform.stop()
    platform.stop()  # idempotent
    client = _docker()
    label = {"label": f"{PROJECT_LABEL}={project}"}
    assert client.containers.list(all=True, filters=label) == []
    assert client.networks.list(filters=label) == []
    assert client.volumes.list(filters=label) == []


@pytest.mark.compose
def test_one_worker_through_the_fault_proxy() -> None:
    """workers=1 (a derived file, not the default two) and the proxy profile between API and Redis."""
    _docker()
    platform = ComposePlatform(StackConfig(workers=1, prometheus=False, proxy=True))
    try:
        info = platform.start()
        assert [c.name for c in platform.components()] == ["redis", "api-0", "nginx", "proxy"]
        control = info.extra["proxy_control_url"]
        with AdminClient(info.base_url, info.admin_token) as admin:
            admin.reset(ResetRequest(productId="cmp-4", stock=100, strategy=Strategy.lua))
        toxic = {"name": "hole", "type": "blackhole", "direction": "both"}
        assert httpx.post(f"{control}/toxics", json=toxic, timeout=5).status_code == 201
        answer = _buy(info.base_url, "x", "cmp-4")  # Redis unreachable for the API only
        assert answer.status_code == 503 and answer.json()["code"] == "backend_unavailable"
        assert read_truth(info.redis_url, "cmp-4").stock_remaining == 100  # truth goes direct
        assert httpx.delete(f"{control}/toxics", timeout=5).status_code == 204
        users = iter(f"y{i}" for i in range(10_000))  # a fresh user per try: a 503 may have sold
        poll(
            lambda: _buy(info.base_url, next(users), "cmp-4").status_code == 200,
            "buy succeeds once the toxic is gone",
        )
    finally:
        platform.stop()
    label = {"label": f"{PROJECT_LABEL}={info.extra['project']}"}
    assert _docker().containers.list(all=True, filters=label) == []


def _component(platform: ComposePlatform, name: str) -> Any:
    return next(c for c in platform.components() if c.name == name)


def test_grafana_dashboard_queries_only_metrics_the_api_exports() -> None:
    import json
    import re

    from flashlab.system import metrics

    conf = REPO_ROOT / "system" / "conf" / "grafana"
    dashboard = json.loads((conf / "dashboards" / "flashlab.json").read_text())
    source = yaml.safe_load((conf / "provisioning" / "datasources" / "prometheus.yml").read_text())
    uid = source["datasources"][0]["uid"]
    exported = {m._name for m in vars(metrics).values() if hasattr(m, "_name")}
    exported |= {f"{n}_total" for n in exported} | {f"{n}_bucket" for n in exported}
    for panel in dashboard["panels"]:
        assert panel["datasource"]["uid"] == uid, panel["title"]
        for target in panel["targets"]:
            used = set(re.findall(r"\bflashlab_[a-z_]+", target["expr"]))
            assert used <= exported, (panel["title"], used - exported)
