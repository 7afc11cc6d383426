"""The consistency checker: each anomaly a check over a run directory's history and Redis truth.

A check is a function `(run) -> CheckResult` registered in `CHECKS` (a new check is one function
plus one line). Examples are ids a human can look up: op ids (`<shopper>:<attempt>`) for client
observations, order ids for Redis orders, user ids for per-user anomalies; at most 10.

- oversell            orders in truth beyond stock_initial; examples: the excess (latest) orders.
- negative_stock      history ops that observed `remaining` < 0, plus 1 if truth's final stock < 0.
- lost_acknowledged   `ok` ops whose order id is not in truth (a 200 the store forgot).
- duplicate_purchases users holding > 1 order in truth or acknowledged > 1 time; count = users.
- phantom_orders      truth orders acknowledged by no `ok` op whose user has no `info` op that
                      could explain them (an indeterminate attempt may well have committed).
- conservation        stock_initial == stock_remaining + orders; count = |difference|.
- server_errors       attempts answered 5xx other than 502/503/504 (a 500 is always a bug).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

import pandas as pd

from flashlab.analysis.stats import classify
from flashlab.core.rundir import Run

MAX_EXAMPLES = 10


@dataclass
class CheckResult:
    ok: bool
    count: int
    examples: list[str] = field(default_factory=list)
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _result(count: int, examples: Iterable[Any], detail: str) -> CheckResult:
    return CheckResult(
        ok=count == 0,
        count=int(count),
        examples=[str(e) for e in list(examples)[:MAX_EXAMPLES]],
        detail=detail,
    )


def _orders(run: Run) -> pd.DataFrame:
    orders = run.truth.orders
    return pd.DataFrame(
        {
            "order_id": pd.Series([o.order_id for o in orders], dtype="object"),
            "user_id": pd.Series([o.user_id for o in orders], dtype="object"),
            "ts_ms": pd.Series([o.ts_ms for o in orders], dtype="int64"),
        }
    )


def _ok_ops(run: Run) -> pd.DataFrame:
    h = run.history
    return h[h["type"].eq("ok")]


def check_oversell(run: Run) -> CheckResult:
    orders = _orders(run).sort_values(["ts_ms", "order_id"], kind="stable")
    excess = max(0, len(orders) - run.truth.stock_initial)
    examples = orders["order_id"].iloc[len(orders) - excess :] if excess else []
    return _result(
        excess, examples, f"{len(orders)} orders in Redis for {run.truth.stock_initial} units"
    )


def check_negative_stock(run: Run) -> CheckResult:
    h = run.history
    negative = h.loc[h["remaining"].notna() & h["remaining"].lt(0), "op_id"]
    final = run.truth.stock_remaining
    count = len(negative) + (1 if final < 0 else 0)
    examples = ([f"truth:stock_remaining={final}"] if final < 0 else []) + list(negative)
    return _result(
        count, examples, f"{len(negative)} answers reported remaining < 0; final stock {final}"
    )


def check_lost_acknowledged(run: Run) -> CheckResult:
    ok = _ok_ops(run)
    known = set(_orders(run)["order_id"])
    lost = ok[~ok["order_id"].isin(known)]  # a null order id cannot be found either
    return _result(
        len(lost), lost["op_id"], f"{len(lost)} of {len(ok)} acknowledged purchases not in Redis"
    )


def check_duplicate_purchases(run: Run) -> CheckResult:
    per_truth = _orders(run)["user_id"].value_counts()
    per_acked = _ok_ops(run)["user_id"].value_counts()
    users = sorted(set(per_truth.index[per_truth > 1]) | set(per_acked.index[per_acked > 1]))
    return _result(
        len(users),
        users,
        f"{int((per_truth > 1).sum())} users hold > 1 order in Redis, "
        f"{int((per_acked > 1).sum())} were acknowledged > 1 time",
    )


def check_phantom_orders(run: Run) -> CheckResult:
    h = run.history
    orders = _orders(run)
    acked = set(_ok_ops(run)["order_id"].dropna())
    explained_users = set(h.loc[h["type"].eq("info"), "user_id"])
    phantom = orders[~orders["order_id"].isin(acked) & ~orders["user_id"].isin(explained_users)]
    unacked = int((~orders["order_id"].isin(acked)).sum())
    return _result(
        len(phantom),
        phantom["order_id"],
        f"{unacked} orders unacknowledged, {unacked - len(phantom)} explained by indeterminate ops",
    )


def check_conservation(run: Run) -> CheckResult:
    t = run.truth
    diff = t.stock_initial - (t.stock_remaining + len(t.orders))
    return _result(
        abs(diff),
        [],
        f"stock_initial {t.stock_initial} vs remaining {t.stock_remaining} + orders {len(t.orders)}"
        f" (difference {diff:+d})",
    )


def check_server_errors(run: Run) -> CheckResult:
    h = run.history
    bad = h[classify(h)["server_error"]]
    statuses = ", ".join(f"{s}: {n}" for s, n in bad["status"].value_counts().sort_index().items())
    return _result(len(bad), bad["op_id"], f"5xx other than 502/503/504 ({statuses or 'none'})")


CHECKS: dict[str, Callable[[Run], CheckResult]] = {
    "oversell": check_oversell,
    "negative_stock": check_negative_stock,
    "lost_acknowledged": check_lost_acknowledged,
    "duplicate_purchases": check_duplicate_purchases,
    "phantom_orders": check_phantom_orders,
    "conservation": check_conservation,
    "server_errors": check_server_errors,
}


def check(run: Run) -> dict[str, CheckResult]:
    """Run every registered check over `run`."""
    return {name: fn(run) for name, fn in CHECKS.items()}
