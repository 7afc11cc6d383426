"""The consistency checker: runs every registered check over a run directory, safely.

The checks themselves live in flashlab.analysis.checks (one `Check` class each, registered in
`flashlab.analysis.checks.CHECKS`). As Jepsen's `check-safe`, a check that raises yields an
"unknown" result (ok=None, count=None, the error in `detail`) instead of killing the summary;
the verdict treats a clause on an unknown check's key as inconclusive
(flashlab.analysis.summary). A check whose facts the run does not offer (flashlab.core.facts:
a backend described by a target file that, say, reads no truth) is not run: its result is
"n/a" with the reason, and clauses on it are inconclusive too.
`LOADED_CHECKS` here is that registry loaded (name -> Check instance);
`CHECK_KEYS` (summary key -> check name) and `summary_keys()` are derived from it.
"""

from __future__ import annotations

from flashlab.analysis.checks import CHECKS
from flashlab.analysis.checks.check import MAX_EXAMPLES
from flashlab.analysis.checks.check import Check
from flashlab.analysis.checks.check import CheckResult
from flashlab.analysis.checks.check import not_applicable
from flashlab.analysis.checks.check import run_facts
from flashlab.analysis.checks.check import unknown
from flashlab.core.rundir import Run

__all__ = [
    "CHECK_KEYS",
    "LOADED_CHECKS",
    "MAX_EXAMPLES",
    "Check",
    "CheckResult",
    "check",
    "figures",
    "summary_keys",
]


def _load(name: str) -> Check:
    check_cls = CHECKS.load(name)
    if check_cls.name != name:
        raise RuntimeError(f"check registry: {name!r} points at a check named {check_cls.name!r}")
    return check_cls()


LOADED_CHECKS: dict[str, Check] = {name: _load(name) for name in CHECKS}

# summary key -> check name, for every key a check fills (its count and its figures)
CHECK_KEYS: dict[str, str] = {
    key: c.name for c in LOADED_CHECKS.values() for key in c.summary_keys()
}


def summary_keys() -> list[str]:
    """The summary.json keys the checks fill, in registry order (each a clause key)."""
    return list(CHECK_KEYS)


def run_check(c: Check, run: Run) -> CheckResult:
    """One check, crash-safe: an exception becomes an "unknown" result naming the error."""
    try:
        return c.run(run)
    except Exception as exc:  # a broken check must not take the run's other evidence with it
        return unknown(exc)


def check(run: Run) -> dict[str, CheckResult]:
    """Run every registered check over `run` that its facts allow; the others are n/a."""
    offered = run_facts(run)
    out = {}
    for name, c in LOADED_CHECKS.items():
        reason = c.not_applicable(offered)
        out[name] = not_applicable(reason) if reason else run_check(c, run)
    return out


def figures(name: str, res: CheckResult) -> dict[str, float | int | None]:
    """The summary keys one check fills: its count under `key`, then its declared figures."""
    c = LOADED_CHECKS[name]
    out: dict[str, float | int | None] = {c.key: res.count} if c.key else {}
    return out | {f: res.figures.get(f) for f in c.figures}
