"""What every benchmark shares: the results line, machine facts, process-tree CPU/RSS sampling, wrk.

A benchmark measures several things side by side in one run and reports their RATIOS (absolute
numbers on a shared 2-core machine are noise). Each appends one JSON line to a results file and
draws one PNG. Every process started here goes through `flashlab.system.procs.spawn` (tracked by PID,
dies with us) and is reaped in a `finally`, whatever happens.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import platform
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np
import psutil

from flashlab.core import meta
from flashlab.system import procs

Size = Literal["tiny", "full"]
SIZES: tuple[str, ...] = ("tiny", "full")
# `flashlab bench` refuses to run outside a checkout (flashlab.core.meta.require_checkout); the
# fallback only keeps this module importable from an installed package.
REPO_ROOT = meta.checkout_root() or Path.cwd()
RESULTS_FULL = REPO_ROOT / "bench" / "results.jsonl"
PLOTS_FULL = REPO_ROOT / "bench" / "plots"
# Tiny runs are smoke checks of the harness, not measurements: they never touch the committed files.
TINY_DIR = REPO_ROOT / "reports" / "bench-tiny"
SAMPLE_S = 0.05  # process-tree sampling period (CPU/RSS)


@dataclass
class BenchContext:
    """Where a benchmark writes, at which size, and how it was invoked."""

    size: Size
    results_path: Path
    plots_dir: Path
    command: str = ""
    log: Callable[[str], None] = lambda _msg: None

    @property
    def tiny(self) -> bool:
        return self.size == "tiny"

    def plot_path(self, bench: str) -> Path:
        self.plots_dir.mkdir(parents=True, exist_ok=True)
        return self.plots_dir / f"{bench}.png"


def default_paths(size: Size) -> tuple[Path, Path]:
    if size == "tiny":
        return TINY_DIR / "results.jsonl", TINY_DIR / "plots"
    return RESULTS_FULL, PLOTS_FULL


# ---- facts -----------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "mem_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "load_avg_1m": round(os.getloadavg()[0], 2),  # how shared the machine was when we started
    }


def git_revision() -> dict[str, Any]:
    from flashlab.core import meta

    return meta.git_revision(REPO_ROOT)


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def target(value: float | None, op: Literal["<=", ">="], bound: float) -> dict[str, Any]:
    """A target and whether it was met (None when the value could not be measured)."""
    met = None if value is None else (value <= bound if op == "<=" else value >= bound)
    return {"value": value, "target": f"{op} {bound:g}", "met": met}


def ratio(num: float | None, den: float | None, digits: int = 3) -> float | None:
    if num is None or den is None or den == 0 or math.isnan(num) or math.isnan(den):
        return None
    return round(num / den, digits)


def result_line(
    ctx: BenchContext,
    bench: str,
    started_at: str,
    params: dict[str, Any],
    raw: dict[str, Any],
    ratios: dict[str, Any],
    targets: dict[str, Any],
    plot: Path | None,
) -> dict[str, Any]:
    return {
        "bench": bench,
        "size": ctx.size,
        "command": ctx.command,
        "git_revision": git_revision(),
        "machine": machine(),
        "started_at": started_at,
        "finished_at": now_iso(),
        "params": params,
        "raw": raw,
        "ratios": ratios,
        "targets": targets,
        "all_targets_met": all(t.get("met") is True for t in targets.values()) if targets else None,
        "plot": _relative(plot) if plot else None,
    }


def _relative(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(REPO_ROOT))
    except ValueError:
        return str(path)


def append_result(path: Path, line: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as fh:
        fh.write(json.dumps(line, default=_json_default, sort_keys=False) + "\n")


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    return str(obj)


# ---- latency helpers --------------------------------------------------------------------------


def pct_ms(values_ns: Sequence[float] | np.ndarray, q: float) -> float | None:
    arr = np.asarray(values_ns, dtype=float)
    if arr.size == 0:
        return None
    return round(float(np.percentile(arr, q)) / 1e6, 3)


# ---- process tree sampling --------------------------------------------------------------------


@dataclass
class TreeSample:
    t: float  # time.time()
    cpu_s: float  # cumulative user+sys of every process ever seen in the tree
    rss: int  # bytes, sum over the processes alive at this sample


@dataclass
class TreeMonitor:
    """Samples CPU and RSS of a process and all its descendants every SAMPLE_S (psutil).

    CPU is summed per PID from the last value seen, so a worker that exits keeps what it used
    (up to one sampling period is lost at its very end). `cpu_between` interpolates the
    cumulative curve at the edges of a load window, so start-up (imports) and tear-down
    (writing files) are left out for every tool alike.
    """

    root_pid: int
    samples: list[TreeSample] = field(default_factory=list)
    _last: dict[tuple[int, float], float] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> TreeMonitor:
        self._thread = threading.Thread(target=self._loop, name="bench-tree-monitor", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _tree(self) -> list[psutil.Process]:
        try:
            root = psutil.Process(self.root_pid)
            return [root, *root.children(recursive=True)]
        except psutil.Error:
            return []

    def sample(self) -> None:
        rss = 0
        for proc in self._tree():
            try:
                with proc.oneshot():
                    times = proc.cpu_times()
                    mem = proc.memory_info().rss
                    key = (proc.pid, proc.create_time())
                    if proc.status() == psutil.STATUS_ZOMBIE:
                        continue
            except psutil.Error:
                continue
            # Own time only: children's times would be counted twice (they are in the tree too).
            self._last[key] = times.user + times.system
            rss += mem
        if self._last or rss:
            self.samples.append(TreeSample(time.time(), sum(self._last.values()), rss))

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(SAMPLE_S)

    @property
    def cpu_total(self) -> float:
        return self.samples[-1].cpu_s if self.samples else 0.0

    @property
    def peak_rss(self) -> int:
        return max((s.rss for s in self.samples), default=0)

    def cpu_at(self, t: float) -> float:
        if not self.samples:
            return 0.0
        ts = [s.t for s in self.samples]
        cs = [s.cpu_s for s in self.samples]
        return float(np.interp(t, ts, cs))

    def cpu_between(self, t0: float, t1: float) -> float:
        return max(0.0, self.cpu_at(t1) - self.cpu_at(t0))


@dataclass
class ToolRun:
    """A finished load-generator process: its output, exit code, and the sampled tree."""

    argv: list[str]
    returncode: int | None
    output: str
    wall_s: float
    started: float
    ended: float
    monitor: TreeMonitor

    @property
    def cpu_total(self) -> float:
        return round(self.monitor.cpu_total, 3)

    @property
    def peak_rss_mib(self) -> float:
        return round(self.monitor.peak_rss / 2**20, 1)


class ToolError(RuntimeError):
    """A load generator failed; the message is one line with the tail of its output."""


def run_tool(
    argv: Sequence[str],
    *,
    name: str,
    timeout_s: float,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> ToolRun:
    """Run a load generator to completion under a hard timeout, sampling its process tree.

    Tracked through flashlab.system.procs (own session, dies with us) and always reaped."""
    with tempfile.NamedTemporaryFile(prefix=f"bench-{name}-", suffix=".log", delete=False) as fh:
        log = Path(fh.name)
    full_env = {**os.environ, **(env or {})}
    started = time.time()
    tracked = procs.spawn(argv, name=f"bench-{name}", env=full_env, log_path=log, cwd=cwd)
    monitor = TreeMonitor(tracked.pid).start()
    try:
        finished = procs.wait(tracked.pid, timeout_s)
        monitor.sample()
    finally:
        monitor.stop()
        procs.terminate(tracked.pid, grace=3.0)
    ended = time.time()
    output = log.read_text(errors="replace")
    log.unlink(missing_ok=True)
    run = ToolRun(
        list(argv), tracked.popen.returncode, output, ended - started, started, ended, monitor
    )
    if not finished:
        raise ToolError(f"{name}: still running after {timeout_s:.0f} s, killed ({_tail(output)})")
    if tracked.popen.returncode != 0:
        raise ToolError(f"{name}: exit {tracked.popen.returncode} ({_tail(output)})")
    return run


def _tail(text: str, lines: int = 3) -> str:
    return " | ".join(text.strip().splitlines()[-lines:])[-400:]


# ---- wrk ----------------------------------------------------------------------------------------

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


@dataclass
class WrkResult:
    argv: list[str]
    stats: dict[str, Any]
    cpu_s: float
    run: ToolRun

    @property
    def rps(self) -> float:
        return self.stats["requests"] / (self.stats["duration_us"] / 1e6)

    @property
    def ok_rps(self) -> float:
        return self.stats["s2xx"] / (self.stats["duration_us"] / 1e6)

    @property
    def p99_ms(self) -> float:
        return self.stats["p99_us"] / 1000.0

    def brief(self) -> dict[str, Any]:
        return {
            **self.stats,
            "rps": round(self.rps, 1),
            "ok_rps": round(self.ok_rps, 1),
            "client_cpu_s": round(self.cpu_s, 3),
        }


@contextlib.contextmanager
def wrk_script() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="bench-wrk-") as tmp:
        path = Path(tmp) / "flashlab.lua"
        path.write_text(WRK_LUA)
        yield path


def wrk(
    url: str,
    *,
    method: str = "GET",
    body: str | None = None,
    threads: int = 2,
    connections: int = 64,
    duration_s: float = 5.0,
    delay_ms: float = 0.0,
    prefix: str = "wrk",
    timeout_s: str = "5s",
) -> WrkResult:
    """One bounded wrk run against a loopback URL (path included); parsed from the Lua summary."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    base = f"{parts.scheme}://{parts.netloc}"
    with wrk_script() as script:
        argv = [
            "wrk",
            f"-t{threads}",
            f"-c{connections}",
            f"-d{max(1, round(duration_s))}s",
            f"--timeout={timeout_s}",
            "-s",
            str(script),
            base,
            "--",
            method,
            parts.path or "/",
            body if body is not None else "-",
            f"{delay_ms:g}",
            prefix,
        ]
        run = run_tool(argv, name="wrk", timeout_s=duration_s + 30)
    for line in run.output.splitlines():
        if line.startswith("WRKJSON "):
            stats = json.loads(line.removeprefix("WRKJSON "))
            return WrkResult(argv, stats, run.monitor.cpu_total, run)
    raise ToolError(f"wrk: no summary line in its output ({_tail(run.output)})")


# ---- the stack ----------------------------------------------------------------------------------


@contextlib.contextmanager
def local_stack(workers: int = 2, **config: Any) -> Iterator[tuple[Any, Any]]:
    """A LocalPlatform (prometheus off unless asked) and its StackInfo; always stopped."""
    from flashlab.core.platform import StackConfig
    from flashlab.system.platforms.local import LocalPlatform

    config.setdefault("prometheus", False)
    platform_ = LocalPlatform(StackConfig(workers=workers, **config))
    try:
        info = platform_.start()
        yield platform_, info
    finally:
        platform_.stop()


def reset_product(
    info: Any, product_id: str, stock: int, strategy: str, **extra: Any
) -> dict[str, Any]:
    """Reset a product through the admin API (clears orders and buyers)."""
    from flashlab.core.contract import ResetRequest, Strategy
    from flashlab.system.admin import AdminClient

    admin = AdminClient(info.base_url, info.admin_token)
    try:
        admin.wait_ready(timeout_s=30)
        ok = admin.reset(
            ResetRequest(product_id=product_id, stock=stock, strategy=Strategy(strategy), **extra)
        )
    finally:
        close = getattr(admin, "close", None)
        if callable(close):
            close()
    return ok.model_dump(mode="json")


def buy_body(product_id: str) -> str:
    return json.dumps({"productId": product_id}, separators=(",", ":"))


def python() -> str:
    return sys.executable


# ---- plots ---------------------------------------------------------------------------------------


def pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_plot(fig: Any, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    pyplot().close(fig)
    return path


# ---- flashlab engines, each in its own measured process ------------------------------------------


@dataclass
class EngineRun:
    engine: str
    result: dict[str, Any]  # EngineResult.to_dict()
    history: Any  # pandas.DataFrame in HISTORY_SCHEMA
    tool: ToolRun

    @property
    def window(self) -> tuple[float, float]:
        """The load window in epoch seconds: first send to last answer."""
        h = self.history
        if h.empty:
            return (self.tool.started, self.tool.ended)
        return (float(h["invoke_ns"].min()) / 1e9, float(h["complete_ns"].max()) / 1e9)

    @property
    def window_cpu_s(self) -> float:
        return self.tool.monitor.cpu_between(*self.window)

    def stats(self) -> dict[str, Any]:
        return history_stats(self.history)


def history_stats(h: Any) -> dict[str, Any]:
    """Requests, achieved rate, service/response percentiles and outcome counts of a history."""
    if h.empty:
        return {"requests": 0}
    t0, t1 = float(h["invoke_ns"].min()), float(h["complete_ns"].max())
    service = (h["complete_ns"] - h["invoke_ns"]).to_numpy()
    response = (h["complete_ns"] - h["intended_ns"]).to_numpy()
    answered = h[h["status"] > 0]
    return {
        "requests": len(h),
        "ok": int((h["type"] == "ok").sum()),
        "info": int((h["type"] == "info").sum()),
        "no_answer": int((h["status"] == 0).sum()),
        "codes": {str(k): int(v) for k, v in h["code"].fillna("none").value_counts().items()},
        "window_s": round((t1 - t0) / 1e9, 3),
        "rate_per_s": round(len(answered) / max((t1 - t0) / 1e9, 1e-9), 1),
        "service_p50_ms": pct_ms(service, 50),
        "service_p95_ms": pct_ms(service, 95),
        "service_p99_ms": pct_ms(service, 99),
        "response_p50_ms": pct_ms(response, 50),
        "response_p95_ms": pct_ms(response, 95),
        "response_p99_ms": pct_ms(response, 99),
    }


def run_engine(
    engine: str,
    *,
    base_url: str,
    product_id: str,
    scenario: Any,
    seed: int,
    workers: int,
    connections: int,
    run_id: str,
    timeout_s: float,
    wrapper: list[str] | None = None,
    client: str = "aiohttp",
) -> EngineRun:
    """Run `flashlab.bench.drive` for one engine; its history comes back as a DataFrame.

    `wrapper` prefixes the command (a profiler); the tree then includes the wrapper too.
    `client` is the shopper HTTP client (flashlab.simulator.client.CLIENTS)."""
    import pyarrow.parquet as pq

    with tempfile.TemporaryDirectory(prefix=f"bench-{engine}-") as tmp:
        spec = {
            "engine": engine,
            "history": str(Path(tmp) / "history.parquet"),
            "run_id": run_id,
            "base_url": base_url,
            "product_id": product_id,
            "scenario": scenario.model_dump(mode="json"),
            "seed": seed,
            "client": client,
            "workers": workers,
            "connections": connections,
            "tmp_dir": str(Path(tmp) / "engine"),
        }
        spec_path = Path(tmp) / "spec.json"
        spec_path.write_text(json.dumps(spec))
        tool = run_tool(
            [*(wrapper or []), python(), "-m", "flashlab.bench.drive", str(spec_path)],
            name=f"engine-{engine}",
            timeout_s=timeout_s,
            cwd=REPO_ROOT,
        )
        history = pq.read_table(spec["history"]).to_pandas()
    for line in tool.output.splitlines():
        if line.startswith("DRIVEJSON "):
            return EngineRun(engine, json.loads(line.removeprefix("DRIVEJSON ")), history, tool)
    raise ToolError(f"engine {engine}: no result line ({_tail(tool.output)})")
