"""The store's consistency checks: oversell, negative stock, lost/duplicate/phantom orders, conservation, 5xx.

- oversell            orders in truth beyond stock_initial; examples: the excess (latest) orders.
                      Without an order log in truth (a target whose file reads none): the
                      acknowledged purchases beyond stock_initial, from the client side.
- negative_stock      history ops that observed `remaining` < 0, plus 1 if truth's final stock < 0.
- lost_acknowledged   `ok` ops whose (order id, user) is not in truth (a 200 the store forgot).
                      Matched on the pair, not the id: ids restart at o-1 in a re-seeded empty
                      Redis, and a new order must not stand in for a lost one (base.order_keys).
                      A target that carries only one of them is matched on that one (match_on).
- duplicate_purchases users holding > 1 order in truth or acknowledged > 1 time; count = users.
- phantom_orders      truth orders acknowledged (order id and user) by no `ok` op, whose user has no `info` op that
                      could explain them (an indeterminate attempt may well have committed).
- conservation        stock_initial == stock_remaining + orders; count = |difference|.
- server_errors       attempts answered 5xx other than 502/503/504 (a 500 is always a bug).
- unknown_answers     answers no rule of the target file matched (outcome `unknown`).
"""

from __future__ import annotations

import pandas as pd

from flashlab.analysis.checks.check import Check
from flashlab.analysis.checks.check import CheckResult
from flashlab.analysis.checks.check import match_keys
from flashlab.analysis.checks.check import ok_ops
from flashlab.analysis.checks.check import orders_frame
from flashlab.analysis.checks.check import result
from flashlab.analysis.checks.check import run_facts
from flashlab.analysis.checks.check import run_match_on
from flashlab.analysis.stats import outcome_flags
from flashlab.core.facts import Fact
from flashlab.core.rundir import Run


class Oversell(Check):
    """orders in the store beyond the initial stock (examples: the latest, excess orders); from
    the acknowledgements when the truth has no order log."""

    name = "oversell"
    report_row = "oversell"

    def run(self, run: Run) -> CheckResult:
        if Fact.orders not in run_facts(run):
            return self._acknowledged(run)
        orders = orders_frame(run).sort_values(["ts_ms", "order_id"], kind="stable")
        excess = max(0, len(orders) - run.truth.stock_initial)
        examples = orders["order_id"].iloc[len(orders) - excess :] if excess else []
        return result(
            excess,
            examples,
            f"{len(orders)} orders in {run.truth.source} for {run.truth.stock_initial} units",
        )

    @staticmethod
    def _acknowledged(run: Run) -> CheckResult:
        ok = ok_ops(run).sort_values(["complete_ns", "op_id"], kind="stable")
        excess = max(0, len(ok) - run.truth.stock_initial)
        return result(
            excess,
            ok["op_id"].iloc[len(ok) - excess :] if excess else [],
            f"{len(ok)} purchases acknowledged for {run.truth.stock_initial} units (client side: "
            "the truth has no order log)",
        )


class NegativeStock(Check):
    """answers that reported remaining < 0, plus 1 if the final stock is negative."""

    name = "negative_stock"
    needs_one_of = (Fact.remaining, Fact.stock)

    def run(self, run: Run) -> CheckResult:
        h = run.history
        negative = h.loc[h["remaining"].notna() & h["remaining"].lt(0), "op_id"]
        final = run.truth.stock_remaining
        below = final is not None and final < 0
        count = len(negative) + (1 if below else 0)
        examples = ([f"truth:stock_remaining={final}"] if below else []) + list(negative)
        shown = "not read" if final is None else final
        return result(
            count, examples, f"{len(negative)} answers reported remaining < 0; final stock {shown}"
        )


class LostAcknowledged(Check):
    """200 answers whose order (id and user) is not in the store (an acknowledged sale the store
    forgot)."""

    name = "lost_acknowledged"
    report_row = "lost acknowledged orders"
    needs = (Fact.orders,)
    needs_matching = True

    def run(self, run: Run) -> CheckResult:
        on = run_match_on(run)
        ok = ok_ops(run)
        known = set(match_keys(orders_frame(run), on))
        lost = ok[~match_keys(ok, on).isin(known)]  # a null order id cannot be found either
        return result(
            len(lost),
            lost["op_id"],
            f"{len(lost)} of {len(ok)} acknowledged purchases not in {run.truth.source} "
            f"(matched on {' and '.join(on)})",
        )


class DuplicatePurchases(Check):
    """users holding more than one order in the store or acknowledged more than once."""

    name = "duplicate_purchases"
    report_row = "duplicate purchases"
    needs = (Fact.user,)

    def run(self, run: Run) -> CheckResult:
        truth_users = Fact.order_users in run_facts(run)
        per_truth = (
            orders_frame(run)["user_id"].value_counts() if truth_users else pd.Series(dtype="int64")
        )
        per_acked = ok_ops(run)["user_id"].value_counts()
        users = sorted(set(per_truth.index[per_truth > 1]) | set(per_acked.index[per_acked > 1]))
        return result(
            len(users),
            users,
            f"{int((per_truth > 1).sum())} users hold > 1 order in {run.truth.source}, "
            f"{int((per_acked > 1).sum())} were acknowledged > 1 time",
        )


class PhantomOrders(Check):
    """orders in the store nobody was told about and no indeterminate attempt explains."""

    name = "phantom_orders"
    report_row = "phantom orders"
    needs = (Fact.orders, Fact.user, Fact.order_users)
    needs_matching = True

    def run(self, run: Run) -> CheckResult:
        h = run.history
        on = run_match_on(run)
        orders = orders_frame(run)
        acked = set(match_keys(ok_ops(run), on).dropna())
        explained_users = set(h.loc[h["type"].eq("info"), "user_id"])
        unacked = ~match_keys(orders, on).isin(acked)
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
    needs = (Fact.stock, Fact.orders)

    def run(self, run: Run) -> CheckResult:
        t = run.truth
        assert t.stock_remaining is not None  # needs Fact.stock
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


class UnknownAnswers(Check):
    """answers no rule of the target file matched: the lab cannot tell what they meant (each is
    counted as indeterminate)."""

    name = "unknown_answers"
    report_row = "answers no rule matched"

    def run(self, run: Run) -> CheckResult:
        h = run.history
        unknown = h[h["code"].eq("unknown")]
        first = unknown["error"].dropna().head(1).tolist()
        return result(
            len(unknown),
            unknown["op_id"],
            f"{len(unknown)} of {len(h)} answers matched no rule"
            + (f" (first: {first[0]})" if first else ""),
        )
