"""Running a load generator as a measured process: process-tree CPU/RSS sampling, hard timeout.

Every process started here goes through `flashlab.system.procs.spawn` (tracked by PID, dies
with us) and is reaped in a `finally`, whatever happens.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path

import numpy as np
import psutil

from flashlab.core.errors import InfraError
from flashlab.core.periodic import PeriodicThread
from flashlab.system import procs

SAMPLE_S = 0.05  # process-tree sampling period (CPU/RSS)


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
    _sampler: PeriodicThread | None = None

    def start(self) -> TreeMonitor:
        self.sample()  # the first sample at once, the rest every SAMPLE_S
        self._sampler = PeriodicThread(
            "bench-tree-monitor", SAMPLE_S, self.sample, join_timeout_s=5
        ).start()
        return self

    def stop(self) -> None:
        if self._sampler is not None:
            self._sampler.stop()

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


class ToolError(InfraError, RuntimeError):
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
        raise ToolError(f"{name}: still running after {timeout_s:.0f} s, killed ({tail(output)})")
    if tracked.popen.returncode != 0:
        raise ToolError(f"{name}: exit {tracked.popen.returncode} ({tail(output)})")
    return run


def python() -> str:
    """The interpreter a measured tool runs under (this venv's)."""
    return sys.executable


def tail(text: str, lines: int = 3) -> str:
    """The last lines of a tool's output, on one line (for error messages)."""
    return " | ".join(text.strip().splitlines()[-lines:])[-400:]
