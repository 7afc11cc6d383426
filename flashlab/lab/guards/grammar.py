"""The guard grammar: an experiment's `guards:` line parsed into a `Guard` (no data, no threads).

A guard (k6 `abortOnFail`, Chaos Toolkit safeguards) is one line of an experiment's `guards:` list:

    guard    := <metric> <op> <number> [ "for" <seconds> "s" ]      e.g.  p99_5s_ms > 5000 for 10s
    op       := == | != | <= | >= | < | >

Metrics (GUARD_METRICS; computed from the answers the driver has received so far, `N` = a sliding
window of the last N seconds of answers by completion time, 1 <= N <= 300):

    oversell_live             max(0, acknowledged purchases so far - the experiment's stock)
    sold_live                 acknowledged purchases (`ok` answers) so far
    answers_live              answers (history rows) received so far
    error_rate_<N>s           errors / answers in the window (error: flashlab.analysis.stats)
    availability_<N>s         available answers / answers in the window
    indeterminate_rate_<N>s   `info` answers / answers in the window
    server_error_rate_<N>s    5xx other than 502/503/504 / answers in the window
    rps_<N>s                  answers per second in the window
    p50|p90|p95|p99_<N>s_ms   response time (complete - intended) percentile in the window, ms

A windowed rate or percentile over an empty window is not measured, and an unmeasured guard does
not hold. `for Ns` means the condition must hold at every evaluation for N seconds running. How
they are measured is flashlab.lab.guards.monitor's job.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass

from flashlab.analysis.hypothesis import holds
from flashlab.core.errors import UserError

MAX_WINDOW_S = 300

_GUARD = re.compile(
    r"^\s*(?P<metric>[A-Za-z0-9_.]+)\s*(?P<op>==|!=|<=|>=|<|>)\s*"
    r"(?P<value>-?[0-9]+(?:\.[0-9]*)?(?:[eE][-+]?[0-9]+)?)"
    r"(?:\s+for\s+(?P<for_s>[0-9]+(?:\.[0-9]*)?)\s*s)?\s*$"
)
# metric name -> window in seconds (None: since the load started); the windowed ones take any N.
CUMULATIVE = ("oversell_live", "sold_live", "answers_live")
_WINDOWED = re.compile(
    r"^(?P<base>error_rate|availability|indeterminate_rate|server_error_rate|rps"
    r"|p50|p90|p95|p99)_(?P<n>[0-9]+)s(?P<ms>_ms)?$"
)
# percentile metric -> the percentile it measures
PERCENTILES = {"p50": 50.0, "p90": 90.0, "p95": 95.0, "p99": 99.0}
_RATES = ("error_rate", "availability", "indeterminate_rate", "server_error_rate")
GUARD_METRICS = (
    *CUMULATIVE,
    *(f"{b}_5s" for b in _RATES),
    "rps_5s",
    *(f"{p}_5s_ms" for p in PERCENTILES),
)


class GuardError(UserError, ValueError):
    """A guard that does not parse: one line, with the closest valid metric when there is one."""


@dataclass(frozen=True)
class Guard:
    """One parsed guard: its metric, the window that metric is measured over, the condition."""

    text: str
    metric: str
    base: str  # the metric without its window (e.g. "p99", "error_rate", "oversell_live")
    window_s: int | None
    op: str
    value: float
    for_s: float = 0.0

    def holds(self, measured: float | None) -> bool:
        return holds(measured, self.op, self.value)


def _metric(name: str, text: str) -> tuple[str, int | None]:
    if name in CUMULATIVE:
        return name, None
    match = _WINDOWED.match(name)
    is_pct = match is not None and match["base"] in PERCENTILES
    if match and is_pct == bool(match["ms"]) and 1 <= int(match["n"]) <= MAX_WINDOW_S:
        return match["base"], int(match["n"])
    close = difflib.get_close_matches(name, GUARD_METRICS, n=1, cutoff=0.5)
    hint = f"did you mean {close[0]!r}?" if close else f"allowed: {', '.join(GUARD_METRICS)}"
    raise GuardError(f"unknown guard metric {name!r} in {text!r} ({hint}; windows 1..300 s)")


def parse_guard(text: str) -> Guard:
    """The guard `text` says, or GuardError with one line saying what is wrong."""
    match = _GUARD.match(text)
    if not match:
        raise GuardError(
            f"cannot parse guard {text!r}: expected '<metric> <op> <number> [for <N>s]', "
            "e.g. 'oversell_live > 0' or 'p99_5s_ms > 5000 for 10s'"
        )
    base, window = _metric(match["metric"], text)
    for_s = float(match["for_s"] or 0.0)
    if for_s > 3600:
        raise GuardError(f"'for' longer than 3600 s in {text!r}")
    return Guard(
        text.strip(), match["metric"], base, window, match["op"], float(match["value"]), for_s
    )
