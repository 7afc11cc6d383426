"""The Locust side of the simulator benchmark: FastHttpUser shoppers POSTing one buy each.

Configured by environment (set by flashlab.bench.simulator): BENCH_PRODUCT, BENCH_REQUESTS (a hard quota:
the run quits once that many requests have been answered), BENCH_RATE_PER_USER (requests/s per
user, Locust's constant_throughput), BENCH_OUT (a JSON file: load window and exact latencies).
"""

from __future__ import annotations

import itertools
import json
import os
import time
from pathlib import Path
from typing import Any

import gevent
from locust import FastHttpUser
from locust import constant_throughput
from locust import events
from locust import task
from locust.exception import StopUser

PRODUCT = os.environ.get("BENCH_PRODUCT", "bench-sim")
QUOTA = int(os.environ.get("BENCH_REQUESTS", "1000"))
RATE_PER_USER = float(os.environ.get("BENCH_RATE_PER_USER", "1"))
OUT = os.environ.get("BENCH_OUT", "")
BODY = json.dumps({"productId": PRODUCT}, separators=(",", ":"))

_issued = itertools.count()
_prefix = f"locust-{os.getpid()}-{time.time_ns() % 10**9}-"
_latencies_ms: list[float] = []
_window = {"first": 0.0, "last": 0.0}
_statuses: dict[str, int] = {}
_quitting = False


@events.request.add_listener
def _on_request(
    response_time: float, start_time: float | None = None, response: Any = None, **_: Any
) -> None:
    global _quitting
    end = time.time()
    _latencies_ms.append(response_time)
    begin = start_time if start_time is not None else end - response_time / 1000
    if not _window["first"] or begin < _window["first"]:
        _window["first"] = begin
    _window["last"] = max(_window["last"], end)
    status = str(getattr(response, "status_code", 0) or 0)
    _statuses[status] = _statuses.get(status, 0) + 1
    if len(_latencies_ms) >= QUOTA and not _quitting:
        _quitting = True
        runner = Shopper.environment_ref.runner if Shopper.environment_ref else None
        if runner is not None:
            gevent.spawn(runner.quit)


def _dump() -> None:
    if OUT:
        data = {**_window, "latencies_ms": _latencies_ms, "statuses": _statuses, "pid": os.getpid()}
        Path(OUT).write_text(json.dumps(data))


@events.test_stop.add_listener
def _on_stop(**_: Any) -> None:
    _dump()


@events.quitting.add_listener
def _on_quit(**_: Any) -> None:
    _dump()


class Shopper(FastHttpUser):
    wait_time = constant_throughput(RATE_PER_USER)
    environment_ref: Any = None

    def on_start(self) -> None:
        Shopper.environment_ref = self.environment

    @task
    def buy(self) -> None:
        n = next(_issued)
        if n >= QUOTA:
            raise StopUser()
        self.client.post(
            "/api/v1/shop/buy",
            data=BODY,
            headers={"x-user-id": f"{_prefix}{n}", "Content-Type": "application/json"},
            name="buy",
        )
