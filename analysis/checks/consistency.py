"""The store's consistency checks: oversell, negative stock, lost/duplicate/phantom orders, conservation, 5xx.

- oversell            orders in truth beyond stock_initial; examples: the excess (latest) orders.
- negative_stock      history ops that observed `remaining` < 0, plus 1 if truth's final stock < 0.
- lost_acknowledged   `ok` ops whose (order id, user) is not in truth (a 200 the store forgot).
                      Matched on the pair, not the id: ids restart at o-1 in a re-seeded empty
                      Redis, and a new order must not stand in for a lost one (base.order_keys).
- duplicate_purchases users holding > 1 order in truth or acknowledged > 1 time; count = users.
- phantom_orders      truth orders acknowledged (order id and user) by no `ok` op, whose user has no `info` op that
                      could explain them (an indeterminate attempt may well have committed).
- conservation        stock_initial == stock_remaining + orders; count = |difference|.
- server_errors       attempts answered 5xx other than 502/503/504 (a 500 is always a bug).
"""

from __future__ import annotations

from flashlab.analysis.checks.base import Check
from flashlab.analysis.checks.base import CheckResult
from flashlab.analysis.checks.base import ok_ops
from flashlab.analysis.checks.base import order_keys
from flashlab.analysis.checks.base import orders_frame
from flashlab.analysis.checks.base import result
from flashlab.analysis.stats import outcome_flags
from flashlab.core.rundir import Run


class Oversell(Check):
    """orders in Redis beyond the initial stock (examples: the latest, excess orders)."""

    name = "oversell"
    report_row = "oversell"

    def run(self, run: Run) -> CheckResult:
        orders = orders_frame(run).sort_values(["ts_ms", "order_id"], kind="stable")
        excess = max(0, len(orders) - run.truth.stock_initial)
        examples = orders["order_id"].iloc[len(orders) - excess :] if excess else []
        return result(
            excess, examples, f"{len(orders)} orders in Redis for {run.truth.stock_initial} units"
        )


class NegativeStock(Check):
    """answers that reported remaining < 0, plus 1 if the final stock is negative."""

    name = "negative_stock"

    def run(self, run: Run) -> CheckResult:
        h = run.history
        negative = h.loc[h["remaining"].notna() & h["remaining"].lt(0), "op_id"]
        final = run.truth.stock_remaining
        count = len(negative) + (1 if final < 0 else 0)
        examples = ([f"truth:stock_remaining={final}"] if final < 0 else []) + list(negative)
        return result(
            count, examples, f"{len(negative)} answers reported remaining < 0; final stock {final}"
        )


class LostAcknowledged(Check):
    """200 answers whose order (id and user) is not in Redis (an acknowledged sale the store
    forgot)."""

    name = "lost_acknowledged"
    report_row = "lost acknowledged orders"

    def run(self, run: Run) -> CheckResult:
        ok = ok_ops(run)
        known = set(order_keys(orders_frame(run)))
        lost = ok[~order_keys(ok).isin(known)]  # a null order id cannot be found either
        return result(
            len(lost),
            lost["op_id"],
            f"{len(lost)} of {len(ok)} acknowledged purchases not in Redis",
        )


class DuplicatePurchases(Check):
    """users holding more than one order in Redis or acknowledged more than once."""

    name = "duplicate_purchases"
    report_row = "duplicate purchases"

    def run(self, run: Run) -> CheckResult:
        per_truth = orders_frame(run)["user_id"].value_counts()
        per_acked = ok_ops(run)["user_id"].value_counts()
        users = sorted(set(per_truth.index[per_truth > 1]) | set(per_acked.index[per_acked > 1]))
        return result(
            len(users),
            users,
            f"{int((per_truth > 1).sum())} users hold > 1 order in Redis, "
            f"{int((per_acked > 1).sum())} were acknowledged > 1 time",
        )


class PhantomOrders(Check):
    """orders in Redis nobody was told about and no indeterminate attempt explains."""

    name = "phantom_orders"
    report_row = "phantom orders"

    def run(self, run: Run) -> CheckResult:
        h = run.history
        orders = orders_frame(run)
        acked = set(order_keys(ok_ops(run)).dropna())
        explained_users = set(h.loc[h["type"].eq("info"), "user_id"])
        unacked = ~order_keys(orders).isin(acked)
        phantom = orders[unacked & ~orders["user_id"].isin(explained_users)]
        n_unacked = int(unacked.sum())
        return result(
            len(phantom),
            phantom["order_id"],
            f"{n_unacked} orders unacknowledged, {n_unacked - len(phantom)} explained by "
            "indeterminate ops",
        )


class Conservation(Check):
    """stock_initial == stock_remaining + orders; count = |difference|."""

    name = "conservation"
    key = "conservation_errors"

    def run(self, run: Run) -> CheckResult:
        t = run.truth
        diff = t.stock_initial - (t.stock_remaining + len(t.orders))
        return result(
            abs(diff),
            [],
            f"stock_initial {t.stock_initial} vs remaining {t.stock_remaining} + orders "
            f"{len(t.orders)} (difference {diff:+d})",
        )


class ServerErrors(Check):
    """answers 5xx other than 502/503/504 (a 500 is always a bug)."""

    name = "server_errors"
    key = None  # the clause vocabulary has `server_error_rate` (flashlab.analysis.stats) instead

    def run(self, run: Run) -> CheckResult:
        h = run.history
        bad = h[outcome_flags(h)["server_error"]]
        counts = bad["status"].value_counts().sort_index().items()
        statuses = ", ".join(f"{s}: {n}" for s, n in counts)
        return result(len(bad), bad["op_id"], f"5xx other than 502/503/504 ({statuses or 'none'})")
