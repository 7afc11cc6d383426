"""wrk as a measured benchmark tool: one bounded run, its CPU sampled, its summary parsed.

The script, command line and summary line are flashlab.simulator.wrk's (shared with the lab's
capacity probe); this module adds the measured process (flashlab.bench.measured)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flashlab.bench.measured import ToolError
from flashlab.bench.measured import ToolRun
from flashlab.bench.measured import run_tool
from flashlab.bench.measured import tail
from flashlab.simulator.wrk import WrkOutputError
from flashlab.simulator.wrk import parse_summary
from flashlab.simulator.wrk import wrk_argv
from flashlab.simulator.wrk import wrk_script


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


def wrk(url: str, *, duration_s: float = 5.0, **options: Any) -> WrkResult:
    """One bounded wrk run against a loopback URL (path included); parsed from the Lua summary.

    `options` are wrk_argv's (flashlab.simulator.wrk: method, body, threads, connections,
    delay_ms, prefix, timeout_s), which holds their defaults.
    """
    with wrk_script() as script:
        argv = wrk_argv(url, script, duration_s=duration_s, **options)
        run = run_tool(argv, name="wrk", timeout_s=duration_s + 30)
    try:
        stats = parse_summary(run.output)
    except WrkOutputError:
        raise ToolError(f"wrk: no summary line in its output ({tail(run.output)})") from None
    return WrkResult(argv, stats, run.monitor.cpu_total, run)
