"""Steady-state hypotheses: clauses like `oversell == 0` or `latency_ms.p99 < 800` over summary keys.

A clause is `<key>[.<sub>] <op> <number>`. Keys are checked against `SUMMARY_KEYS` when the
experiment file is loaded, so a typo fails fast (exit 2) instead of after a ten-minute run.
"""

from __future__ import annotations

import operator
import re
from dataclasses import dataclass
from typing import Any

PERCENTILE_KEYS = ("p50", "p90", "p95", "p99", "p999", "max")

# Summary keys a hypothesis may name; dicts list their sub-keys.
SUMMARY_KEYS: dict[str, tuple[str, ...]] = {
    "oversell": (),
    "negative_stock": (),
    "lost_acknowledged": (),
    "duplicate_purchases": (),
    "phantom_orders": (),
    "conservation_errors": (),
    "sold": (),
    "stock_initial": (),
    "stock_remaining": (),
    "shoppers": (),
    "attempts": (),
    "conflict_rate": (),
    "success_rate": (),
    "error_rate": (),
    "indeterminate_rate": (),
    "server_error_rate": (),  # 5xx other than 503 (a 500 is always a bug)
    "availability": (),
    "throughput_rps": (),
    "duration_s": (),
    "sellout_s": (),
    "latency_ms": PERCENTILE_KEYS,
    "service_latency_ms": PERCENTILE_KEYS,
    "fairness": ("rank_correlation", "early_half_win_share"),
    # Load-generator health (manifest.engine.generator): e.g. `generator_stalled_s < 0.5` makes a
    # run whose client stalled fail instead of reporting the client's delay as server latency.
    "generator_lag_ms_p99": (),
    "generator_stalled_s": (),
}

_OPS = {
    "==": operator.eq,
    "!=": operator.ne,
    "<=": operator.le,
    ">=": operator.ge,
    "<": operator.lt,
    ">": operator.gt,
}
_CLAUSE = re.compile(
    r"^\s*([a-z_][a-z0-9_]*(?:\.[a-z0-9_]+)?)\s*(==|!=|<=|>=|<|>)\s*(-?[0-9.eE+]+)\s*$"
)


class HypothesisError(ValueError):
    pass


@dataclass(frozen=True)
class Clause:
    key: str
    op: str
    value: float
    text: str

    def measure(self, summary: dict[str, Any]) -> float | None:
        node: Any = summary
        for part in self.key.split("."):
            if not isinstance(node, dict) or part not in node:
                return None
            node = node[part]
        return None if node is None else float(node)

    def evaluate(self, summary: dict[str, Any]) -> dict[str, Any]:
        measured = self.measure(summary)
        # A value that could not be measured (e.g. no sell-out) does not satisfy the clause.
        ok = measured is not None and bool(_OPS[self.op](measured, self.value))
        return {
            "clause": self.text,
            "key": self.key,
            "op": self.op,
            "expected": self.value,
            "measured": measured,
            "ok": ok,
        }


def parse_clause(text: str) -> Clause:
    match = _CLAUSE.match(text)
    if not match:
        raise HypothesisError(
            f"cannot parse {text!r}: expected '<key> <op> <number>', e.g. 'oversell == 0'"
        )
    key, op, raw = match.groups()
    head, _, sub = key.partition(".")
    if head not in SUMMARY_KEYS:
        raise HypothesisError(
            f"unknown key {head!r} in {text!r} (allowed: {', '.join(SUMMARY_KEYS)})"
        )
    subs = SUMMARY_KEYS[head]
    if subs and sub not in subs:
        raise HypothesisError(f"{head!r} needs one of .{', .'.join(subs)} in {text!r}")
    if not subs and sub:
        raise HypothesisError(f"{head!r} has no sub-key (got {key!r})")
    try:
        value = float(raw)
    except ValueError:
        raise HypothesisError(f"not a number: {raw!r} in {text!r}") from None
    return Clause(key=key, op=op, value=value, text=text.strip())


def evaluate(clauses: list[str], summary: dict[str, Any]) -> tuple[bool, list[dict[str, Any]]]:
    results = [parse_clause(c).evaluate(summary) for c in clauses]
    return all(r["ok"] for r in results), results
