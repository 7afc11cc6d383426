"""undersold: units left unsold at the end while at least one shopper gave up without buying.

Units left = stock_initial - orders in the store's order log (truth); a shopper gave up when the run
ended with no `ok` answer and no order in the log for their user id (turned away, out of
patience, or told "sold out"). Count = units left when at least one shopper gave up, else 0:
stock nobody asked for is not undersold. Examples: the earliest-arriving shoppers who gave up.
"""

from __future__ import annotations

from flashlab.analysis.checks.check import Check
from flashlab.analysis.checks.check import CheckResult
from flashlab.analysis.checks.check import ok_ops
from flashlab.analysis.checks.check import orders_frame
from flashlab.analysis.checks.check import result
from flashlab.core.facts import Fact
from flashlab.core.rundir import Run


class Undersold(Check):
    """units left unsold while shoppers gave up without buying (count = units left)."""

    name = "undersold"
    report_row = "undersold: units left / shoppers who gave up"
    figures = ("gave_up",)
    needs = (Fact.orders, Fact.user)

    def run(self, run: Run) -> CheckResult:
        h = run.history
        units_left = max(0, run.truth.stock_initial - len(run.truth.orders))
        bought = set(orders_frame(run)["user_id"].dropna()) | set(ok_ops(run)["user_id"])
        first = h.sort_values("shopper", kind="stable").drop_duplicates("user_id")
        gave_up = first.loc[~first["user_id"].isin(bought), "user_id"]
        count = units_left if len(gave_up) else 0
        return result(
            count,
            gave_up if count else [],
            f"{units_left} units left unsold; {len(gave_up)} of {len(first)} shoppers gave up "
            "without buying",
            {"gave_up": len(gave_up)},
        )
