"""The local platform with real processes: readiness through nginx, worker respawn, restarts of
Redis/nginx on the same port, durability directives, clean stop, and the process-tracking layer."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import psutil
import pytest
import redis
import support

from flashlab.core.platform import DURABILITY_MODES
from flashlab.core.platform import StackConfig
from flashlab.core.platform import StackInfo
from flashlab.system import procs
from flashlab.system.config import render
from flashlab.system.platforms.local import LocalPlatform
from flashlab.system.platforms.local import StackError

DEADLINE_S = 30.0


def component(info_or_platform: StackInfo | LocalPlatform, name: str):  # type: ignore[no-untyped-def]
    comps = (
        info_or_platform.components
        if isinstance(info_or_platform, StackInfo)
        else info_or_platform.components()
    )
    return next(c for c in comps if c.name == name)


def poll(condition: Callable[[], object], what: str) -> None:
    support.poll(condition, what, DEADLINE_S)


def status_of(url: str) -> int | None:
    """HTTP status of a GET, or None while nothing listens (a component is still starting)."""
    try:
        return httpx.get(url, timeout=2).status_code
    except httpx.HTTPError:
        return None


def all_pids(platform: LocalPlatform) -> list[psutil.Process]:
    """Every process of the stack, including nginx's workers (children of its master)."""
    found: list[psutil.Process] = []
    for comp in platform.components():
        if comp.pid:
            proc = psutil.Process(comp.pid)
            found.append(proc)
            found.extend(proc.children(recursive=True))
    return found


def test_stack_answers_readyz_through_nginx(local_stack: StackInfo) -> None:
    names = [c.name for c in local_stack.components]
    assert names == ["redis", "api-0", "api-1", "nginx"]
    assert all(c.running and c.pid for c in local_stack.components)
    assert len({c.port for c in local_stack.components}) == len(names)
    assert local_stack.base_url.startswith("http://127.0.0.1:")
    assert local_stack.redis_url.startswith("redis://127.0.0.1:")
    with httpx.Client(base_url=local_stack.base_url, timeout=5) as client:
        ready = client.get("/readyz")
        assert ready.status_code == 200, ready.text
        # Both workers serve behind nginx (round robin over keep-alive upstreams).
        workers = {client.get("/readyz").json().get("worker") for _ in range(20)}
        assert workers == {"api-0", "api-1"}
        assert client.get("/metrics").status_code == 200
        # Oversized bodies stop at nginx (client_max_body_size), before any worker.
        big = client.post("/api/v1/shop/buy", content=b"x" * 20_000, headers={"x-user-id": "u"})
        assert big.status_code == 400
        assert big.json()["code"] == "bad_request"
    assert redis.Redis.from_url(local_stack.redis_url).ping()


def test_killed_worker_is_respawned_while_nginx_keeps_answering(make_stack) -> None:  # type: ignore[no-untyped-def]
    with (
        make_stack(workers=2) as (platform, info),
        httpx.Client(base_url=info.base_url, timeout=5) as client,
    ):
        old = component(info, "api-0")
        platform.signal("api-0", signal.SIGKILL)
        statuses: list[int] = []
        deadline = time.monotonic() + DEADLINE_S
        # Bounded request loop across the kill window until the supervisor has respawned it.
        for _ in range(5_000):
            statuses.append(client.get("/readyz").status_code)
            now = component(platform, "api-0")
            if (now.restarts == 1 and now.running) or time.monotonic() > deadline:
                break
        new = component(platform, "api-0")
        assert new.restarts == 1 and new.running and new.pid != old.pid
        assert not psutil.pid_exists(old.pid) or psutil.Process(old.pid).status() == "zombie"
        assert all(s in (200, 502) for s in statuses), sorted(set(statuses))
        poll(
            lambda: status_of(f"http://127.0.0.1:{new.port}/healthz") == 200,
            "the respawned worker's /healthz",
        )
        # nginx skips a failed upstream for fail_timeout (2 s), then brings it back: from here
        # on every answer must be 200, and api-0 must serve again within the deadline.
        after: list[httpx.Response] = []
        deadline = time.monotonic() + DEADLINE_S
        while time.monotonic() < deadline and len(after) < 20_000:
            after.append(client.get("/readyz"))
            if after[-1].json().get("worker") == "api-0":
                break
        after += [client.get("/readyz") for _ in range(40)]
        assert {r.status_code for r in after} == {200}
        assert {r.json()["worker"] for r in after[-40:]} == {"api-0", "api-1"}
        assert component(platform, "api-1").restarts == 0


def test_stop_reaps_every_process_and_removes_the_workdir() -> None:
    platform = LocalPlatform(StackConfig(workers=2, prometheus=False))
    info = platform.start()
    processes = all_pids(platform)
    assert len(processes) >= 5  # redis, 2 workers, nginx master + >=1 nginx worker
    workdir = Path(info.workdir or "")
    assert workdir.is_dir()
    platform.stop()
    alive = [p.pid for p in processes if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert alive == []
    assert not workdir.exists()
    platform.stop()  # idempotent


def test_given_workdir_keeps_logs(tmp_path: Path) -> None:
    workdir = tmp_path / "stack"
    platform = LocalPlatform(StackConfig(workers=1, prometheus=False, workdir=str(workdir)))
    try:
        platform.start()
    finally:
        platform.stop()
    logs = {p.name for p in (workdir / "logs").iterdir()}
    assert {"redis.log", "api-0.log", "nginx.log"} <= logs
    assert "appendonly no" in (workdir / "redis" / "redis.conf").read_text()


@pytest.mark.parametrize(
    ("mode", "expected", "absent"),
    [
        ("none", ['save ""', "appendonly no"], ["appendfsync"]),
        ("rdb", ["save 1 1", "appendonly no"], ["appendfsync"]),
        ("aof-everysec", ["appendonly yes", "appendfsync everysec", 'save ""'], []),
        ("aof-always", ["appendonly yes", "appendfsync always", 'save ""'], []),
    ],
)
def test_durability_modes_render_the_right_redis_directives(
    mode: str, expected: list[str], absent: list[str]
) -> None:
    text = render("redis.conf", bind="127.0.0.1", port=1, dir="/d", durability=mode, logfile="")
    lines = {line.strip() for line in text.splitlines()}
    for directive in expected:
        assert directive in lines, (mode, directive)
    for word in absent:
        assert not any(line.startswith(word) for line in lines), (mode, word)
    assert set(DURABILITY_MODES) == {"none", "rdb", "aof-everysec", "aof-always"}


def test_unknown_durability_and_missing_template_variables_fail_clearly() -> None:
    with pytest.raises(ValueError, match="unknown durability"):
        render("redis.conf", bind="x", port=1, dir="/d", durability="sometimes", logfile="")
    with pytest.raises(Exception, match="upstreams"):
        render(
            "nginx.conf",
            listen="80",
            keepalive=1,
            worker_processes=1,
            pid_file="p",
            error_log="e",
            temp_dir=None,
        )
    with pytest.raises(ValueError, match="unknown config template"):
        render("nope.conf")
    with pytest.raises(StackError, match="durability"):
        LocalPlatform(StackConfig(durability="sometimes"))  # type: ignore[arg-type]


def test_nginx_conf_keeps_upstreams_alive_and_never_retries_posts() -> None:
    text = render(
        "nginx.conf",
        listen="127.0.0.1:1",
        upstreams=["127.0.0.1:2", "127.0.0.1:3"],
        keepalive=32,
        worker_processes="auto",
        pid_file="/p",
        error_log="/e",
        temp_dir="/t",
    )
    for directive in (
        "daemon off;",
        "keepalive 32;",
        "proxy_http_version 1.1;",
        'proxy_set_header Connection "";',
        "access_log off;",
        "server 127.0.0.1:3 max_fails=3 fail_timeout=1s;",
        "client_body_temp_path /t/client_body;",
    ):
        assert directive in text
    assert "non_idempotent" not in text.replace("(no `non_idempotent`)", "")
    prom = render("prometheus.yml", targets=["127.0.0.1:9"], interval="1s")
    assert "scrape_interval: 1s" in prom and '"127.0.0.1:9"' in prom


def test_aof_always_redis_survives_a_sigkill_restart_on_the_same_port(make_stack) -> None:  # type: ignore[no-untyped-def]
    with make_stack(workers=1, durability="aof-always") as (platform, info):
        client = redis.Redis.from_url(info.redis_url, socket_timeout=2)
        assert client.config_get("appendfsync") == {"appendfsync": "always"}
        assert client.config_get("appendonly") == {"appendonly": "yes"}
        client.set("flashlab:test:acked", "1")
        old = component(platform, "redis")
        platform.signal("redis", signal.SIGKILL)
        poll(lambda: not component(platform, "redis").running, "redis to die")
        restarted = platform.start_component("redis")
        assert restarted.port == old.port and restarted.pid != old.pid
        assert restarted.restarts == 1 and restarted.running
        assert redis.Redis.from_url(info.redis_url).get("flashlab:test:acked") == b"1"
        client.close()
        # Redis was not auto-restarted by the monitor; the API recovers on its own.
        poll(
            lambda: status_of(f"{info.base_url}/readyz") == 200,
            "/readyz after the Redis restart",
        )


def test_no_durability_loses_data_on_restart(make_stack) -> None:  # type: ignore[no-untyped-def]
    with make_stack(workers=1, durability="none") as (platform, info):
        redis.Redis.from_url(info.redis_url).set("flashlab:test:volatile", "1")
        platform.signal("redis", signal.SIGKILL)
        poll(lambda: not component(platform, "redis").running, "redis to die")
        platform.start_component("redis")
        assert redis.Redis.from_url(info.redis_url).get("flashlab:test:volatile") is None


def test_nginx_sigkill_takes_its_workers_and_restarts_on_the_same_port(make_stack) -> None:  # type: ignore[no-untyped-def]
    with make_stack(workers=1) as (platform, info):
        old = component(platform, "nginx")
        workers = psutil.Process(old.pid).children()
        assert workers
        platform.signal("nginx", signal.SIGKILL)
        _, alive = psutil.wait_procs(workers, timeout=DEADLINE_S)
        assert alive == []  # orphaned workers would keep the port and answer
        assert component(platform, "nginx").running is False
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"{info.base_url}/readyz", timeout=2)
        new = platform.start_component("nginx")
        assert new.port == old.port and new.restarts == 1
        assert status_of(f"{info.base_url}/readyz") == 200


def test_proxy_component_sits_between_workers_and_redis(make_stack) -> None:  # type: ignore[no-untyped-def]
    with make_stack(workers=1, proxy=True) as (platform, info):
        names = [c.name for c in info.components]
        assert names == ["redis", "proxy", "api-0", "nginx"]
        assert info.extra["proxy_control_url"].startswith("http://127.0.0.1:")
        assert status_of(f"{info.base_url}/readyz") == 200
        # Truth channel goes direct: StackInfo.redis_url is Redis' own port, not the proxy's.
        assert info.redis_url.endswith(f":{component(info, 'redis').port}/0")
        # With the proxy gone, the workers lose Redis (503) while the truth channel still works.
        platform.signal("proxy", signal.SIGKILL)
        poll(
            lambda: status_of(f"{info.base_url}/readyz") == 503,
            "/readyz to answer 503 without the proxy",
        )
        assert redis.Redis.from_url(info.redis_url).ping()
        platform.start_component("proxy")
        poll(
            lambda: status_of(f"{info.base_url}/readyz") == 200,
            "/readyz back to 200",
        )


def test_spawned_children_die_with_their_parent(tmp_path: Path) -> None:
    """PDEATHSIG: a SIGKILLed supervisor leaves no child behind (its grandchild here)."""
    pid_file = tmp_path / "grandchild.pid"
    script = (
        "import sys, time; from flashlab.system import procs; "
        "t = procs.spawn([sys.executable, '-c', 'import time; time.sleep(60)'], name='sleeper'); "
        f"open({str(pid_file)!r}, 'w').write(str(t.pid)); time.sleep(60)"
    )
    parent = procs.spawn(
        [sys.executable, "-c", script], name="parent", cwd=Path(__file__).parent.parent
    )
    poll(lambda: pid_file.exists() and pid_file.read_text().strip() != "", "the grandchild PID")
    grandchild = psutil.Process(int(pid_file.read_text()))
    procs.send(parent.pid, signal.SIGKILL)
    assert procs.wait(parent.pid, DEADLINE_S)
    _, alive = psutil.wait_procs([grandchild], timeout=DEADLINE_S)
    assert alive == []
    assert parent.pid in procs.started_pids() and not procs.is_alive(parent.pid)


def test_procs_refuses_foreign_pids_and_terminate_escalates(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not started by this process"):
        procs.terminate(1)
    with pytest.raises(ValueError, match="not started by this process"):
        procs.send(1, signal.SIGTERM)
    # A child that ignores SIGTERM is SIGKILLed after the grace period.
    stubborn = procs.spawn(
        [
            sys.executable,
            "-c",
            "import signal, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
            "print('ready', flush=True); time.sleep(60)",
        ],
        name="stubborn",
        log_path=tmp_path / "stubborn.log",
    )
    poll(lambda: "ready" in (tmp_path / "stubborn.log").read_text(), "the child to ignore SIGTERM")
    code = procs.terminate(stubborn.pid, grace=0.5)
    assert code == -signal.SIGKILL
    assert not procs.is_alive(stubborn.pid)


@pytest.mark.skipif(shutil.which("prometheus") is None, reason="prometheus not installed")
def test_prometheus_scrapes_the_api_through_nginx(make_stack) -> None:  # type: ignore[no-untyped-def]
    with make_stack(workers=1, prometheus=True) as (_platform, info):
        assert info.prometheus_url and component(info, "prometheus").running
        assert status_of(f"{info.base_url}/readyz") == 200  # something to count

        def scraped() -> bool:
            query = f"{info.prometheus_url}/api/v1/query"
            try:
                result = httpx.get(
                    query, params={"query": "flashlab_http_requests_total"}, timeout=2
                )
            except httpx.HTTPError:
                return False
            return result.status_code == 200 and bool(result.json()["data"]["result"])

        poll(scraped, "prometheus to scrape flashlab_http_requests_total")


def test_children_outlive_the_thread_that_started_them(make_stack) -> None:  # type: ignore[no-untyped-def]
    """PDEATHSIG is per *thread*: a Redis restarted from a short-lived (fault) thread must stay up."""
    with make_stack(workers=1) as (platform, info):
        platform.signal("redis", signal.SIGKILL)
        poll(lambda: not component(platform, "redis").running, "redis to die")
        worker = threading.Thread(target=platform.start_component, args=("redis",))
        worker.start()
        worker.join(DEADLINE_S)
        restarted = component(platform, "redis")
        assert restarted.running and restarted.restarts == 1
        # Had the thread forked it, the kernel would SIGKILL it as the thread exits.
        client = redis.Redis.from_url(info.redis_url, socket_timeout=2)
        assert all(client.ping() for _ in range(20))
        assert procs.is_alive(restarted.pid or 0)


def fake_nginx(tmp_path: Path) -> Path:
    """A directory whose `nginx` fails at once, the way a bad config would."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "nginx"
    script.write_text('#!/bin/sh\necho "nginx: [emerg] fake failure for the test" >&2\nexit 1\n')
    script.chmod(0o755)
    return bin_dir


def test_failed_start_names_the_component_and_reaps_what_started(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", f"{fake_nginx(tmp_path)}{os.pathsep}{os.environ['PATH']}")
    before = set(procs.started_pids())
    platform = LocalPlatform(StackConfig(workers=1, prometheus=False))
    with pytest.raises(StackError, match=r"nginx \(port \d+\): process exited.*fake failure"):
        platform.start()
    started = set(procs.started_pids()) - before
    assert len(started) == 3  # redis, api-0, nginx were all launched ...
    assert not any(procs.is_alive(pid) for pid in started)  # ... and all reaped


def test_stack_up_reports_a_failed_start_in_one_line(tmp_path: Path) -> None:
    env = {**os.environ, "PATH": f"{fake_nginx(tmp_path)}{os.pathsep}{os.environ['PATH']}"}
    proc = subprocess.run(
        [sys.executable, "-m", "flashlab.commands.stack", "up", "--no-prometheus"],
        cwd=Path(__file__).resolve().parent.parent,
        env={**env, "FLASHLAB_STATE_DIR": str(tmp_path / "state")},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 4, proc.stdout + proc.stderr  # infrastructure, not bad input
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "nginx" in lines[0] and "fake failure" in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "state" / "stack.json").exists()


def test_api_keepalive_outlives_nginx_upstream_keepalive() -> None:
    """nginx must never reuse an idle upstream connection the API worker is closing: that race
    turns a POST into a 502 nginx may not retry (a spurious indeterminate purchase)."""
    import re

    from flashlab.system.config import render
    from flashlab.system.config import uvicorn_argv

    text = render(
        "nginx.conf",
        listen="127.0.0.1:1",
        upstreams=["127.0.0.1:2"],
        keepalive=8,
        worker_processes=1,
        pid_file="/p",
        error_log="/e",
        temp_dir=None,
    )
    upstream = text[text.index("upstream api") : text.index("server {")]
    nginx_s = int(re.search(r"keepalive_timeout (\d+)s;", upstream).group(1))
    argv = uvicorn_argv("python", "127.0.0.1", 1)
    api_s = int(argv[argv.index("--timeout-keep-alive") + 1])
    assert api_s > nginx_s
    dockerfile = (Path(__file__).resolve().parent.parent / "Dockerfile").read_text()
    assert f'"--timeout-keep-alive", "{api_s}"' in dockerfile  # Compose workers agree


def test_workers_reach_redis_over_a_unix_socket_unless_the_proxy_is_in_the_way(make_stack) -> None:  # type: ignore[no-untyped-def]
    with make_stack(workers=1) as (_platform, info):
        url = info.extra["api_redis_url"]
        assert url.startswith("unix://") and url.endswith("redis.sock?db=0")
        socket_path = url.removeprefix("unix://").removesuffix("?db=0")
        assert Path(socket_path).is_socket()
        assert status_of(f"{info.base_url}/readyz") == 200  # the worker's PING went over it
        clients = redis.Redis.from_url(info.redis_url).client_list()
        # The truth channel (this client) is TCP; the worker's connection is the socket's.
        assert any(c.get("laddr", "").startswith(socket_path) for c in clients), clients
    with make_stack(workers=1, proxy=True) as (_platform, info):
        proxy_port = component(info, "proxy").port
        assert info.extra["api_redis_url"] == f"redis://127.0.0.1:{proxy_port}/0"
