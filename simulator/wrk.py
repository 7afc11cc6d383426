"""wrk, the reference HTTP load generator: its Lua script, its command line and its summary line.

Shared by the lab's capacity probe (flashlab.lab.capacity: `capacity.wrk_buy_rps`) and the
benchmarks (flashlab.bench.wrk, which runs it as a measured process). Nothing here starts a
process: `wrk_argv` builds the command line for a script written by `wrk_script`, and
`parse_summary` reads the one JSON line the script prints when wrk is done.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from flashlab.core.errors import InfraError

# One script for every wrk run, so the client does the same work for GET /healthz and POST /buy:
# a unique x-user-id per request (thread id + counter), status counting, and a JSON summary line.
# `delay()` paces each connection when a target rate is given (wrk's closed loop, throttled,
# with exponential gaps so the total is close to the open-model Poisson stream the engines send).
WRK_LUA = r"""
local threads = {}
local method, path, body, delay_ms, prefix = "GET", "/healthz", nil, 0, "wrk"

function setup(thread)
  thread:set("tid", #threads + 1)
  table.insert(threads, thread)
end

function init(args)
  method, path = args[1], args[2]
  if args[3] ~= "-" then body = args[3] end
  delay_ms = tonumber(args[4])
  prefix = args[5] .. "-" .. tid .. "-"
  counter, s2xx, s409, s410, s5xx, sother = 0, 0, 0, 0, 0, 0
  math.randomseed(1000 + tid)  -- seeded: the same pacing every run
end

function request()
  counter = counter + 1
  local headers = {["x-user-id"] = prefix .. counter}
  if body then headers["Content-Type"] = "application/json" end
  return wrk.format(method, path, headers, body)
end

function response(status, headers, resp_body)
  if status < 300 then s2xx = s2xx + 1
  elseif status == 409 then s409 = s409 + 1
  elseif status == 410 then s410 = s410 + 1
  elseif status >= 500 then s5xx = s5xx + 1
  else sother = sother + 1 end
end

function delay()
  -- Exponential think time with mean delay_ms: connections desynchronise and the sum of
  -- their sends is close to a Poisson stream (a fixed delay sends all connections in bursts).
  if delay_ms <= 0 then return 0 end
  return math.floor(-delay_ms * math.log(1 - math.random()))
end

function done(summary, latency, requests)
  local c = {s2xx = 0, s409 = 0, s410 = 0, s5xx = 0, sother = 0}
  for _, t in ipairs(threads) do
    for k, _ in pairs(c) do c[k] = c[k] + (t:get(k) or 0) end
  end
  io.write(string.format(
    'WRKJSON {"requests": %d, "duration_us": %d, "bytes": %d, "errors_connect": %d, ' ..
    '"errors_read": %d, "errors_write": %d, "errors_timeout": %d, "errors_status": %d, ' ..
    '"s2xx": %d, "s409": %d, "s410": %d, "s5xx": %d, "sother": %d, ' ..
    '"lat_mean_us": %.1f, "p50_us": %d, "p90_us": %d, "p99_us": %d, "max_us": %d}\n',
    summary.requests, summary.duration, summary.bytes, summary.errors.connect,
    summary.errors.read, summary.errors.write, summary.errors.timeout, summary.errors.status,
    c.s2xx, c.s409, c.s410, c.s5xx, c.sother,
    latency.mean, latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max))
end
"""
SUMMARY_PREFIX = "WRKJSON "


class WrkOutputError(InfraError, ValueError):
    """wrk ended without its summary line (it failed to start, or was killed)."""


def installed() -> str | None:
    """wrk's path when it is on PATH, else None (it is optional: docs/BENCHMARKS.md)."""
    return shutil.which("wrk")


@contextlib.contextmanager
def wrk_script() -> Iterator[Path]:
    """The Lua script in a temporary file, for the duration of the block."""
    with tempfile.TemporaryDirectory(prefix="flashlab-wrk-") as tmp:
        path = Path(tmp) / "flashlab.lua"
        path.write_text(WRK_LUA)
        yield path


def wrk_argv(
    url: str,
    script: Path,
    *,
    method: str = "GET",
    body: str | None = None,
    threads: int = 2,
    connections: int = 64,
    duration_s: float = 5.0,
    delay_ms: float = 0.0,
    prefix: str = "wrk",
    timeout_s: str = "5s",
) -> list[str]:
    """wrk's command line for one run against `url` (path included); wrk counts whole seconds."""
    parts = urlsplit(url)
    return [
        "wrk",
        f"-t{threads}",
        f"-c{max(connections, threads)}",  # wrk refuses fewer connections than threads
        f"-d{max(1, round(duration_s))}s",
        f"--timeout={timeout_s}",
        "-s",
        str(script),
        f"{parts.scheme}://{parts.netloc}",
        "--",
        method,
        parts.path or "/",
        body if body is not None else "-",
        f"{delay_ms:g}",
        prefix,
    ]


def parse_summary(output: str) -> dict[str, Any]:
    """The script's summary (requests, duration_us, s2xx, ..., p99_us) from wrk's output."""
    for line in output.splitlines():
        if line.startswith(SUMMARY_PREFIX):
            return dict(json.loads(line.removeprefix(SUMMARY_PREFIX)))
    raise WrkOutputError(f"wrk: no summary line in its output ({output.strip()[-300:]!r})")
