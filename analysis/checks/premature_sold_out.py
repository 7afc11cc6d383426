"""premature_sold_out: `410 sold_out` answers given while stock remained, judged in real time.

A sold-out answer is premature when its completion (client clock) precedes
- a later successful purchase: an `ok` answer whose attempt was sent after it (invoke_ns), not
  counting oversold units (those are the oversell check's), or
- a moment when Redis's order log shows stock remaining: the log's stock is stock_initial minus
  the orders with server time before that moment, so every answer before the server time of the
  order that took the last unit (`ts_ms` of the stock_initial-th order) came too early; if the log
  never reaches stock_initial orders (units came back, e.g. a Redis restart lost orders), every
  sold-out answer before the truth read is premature.
Both are checks on a counter's history in the spirit of linearizability: once "sold out" was
observed, no later operation may take a unit. Client and server share the host's clock
(time.time_ns, Redis TIME); order times are whole milliseconds, floored, so `ts_ms * 1e6 >
complete_ns` means the order happened after the answer. Examples: the earliest premature answers.
"""

from __future__ import annotations

import numpy as np

from flashlab.analysis.checks.check import Check
from flashlab.analysis.checks.check import CheckResult
from flashlab.analysis.checks.check import excess_order_keys
from flashlab.analysis.checks.check import match_keys
from flashlab.analysis.checks.check import ok_ops
from flashlab.analysis.checks.check import orders_frame
from flashlab.analysis.checks.check import result
from flashlab.analysis.checks.check import run_match_on
from flashlab.core.facts import Fact
from flashlab.core.rundir import Run

NS_PER_MS = 1_000_000
NS_PER_S = 1_000_000_000


def last_sale_ns(run: Run) -> int | None:
    """The invoke time of the last successful purchase of a real (not oversold) unit."""
    on = run_match_on(run)
    ok = ok_ops(run)
    ok = ok[~match_keys(ok, on).isin(excess_order_keys(run, on))]
    return int(ok["invoke_ns"].max()) if len(ok) else None


def log_sellout_ns(run: Run) -> int | None:
    """From when the order log shows no stock left; the truth read time if it never does."""
    t = run.truth
    if t.stock_initial <= 0:
        return None  # no product (e.g. Redis came back empty): the log says nothing
    ts = np.sort(orders_frame(run)["ts_ms"].to_numpy(dtype="int64"))
    if len(ts) < t.stock_initial:
        return int(t.read_at_ns)
    return int(ts[t.stock_initial - 1]) * NS_PER_MS


class PrematureSoldOut(Check):
    """410 sold_out answers that completed before a later sale or while Redis's order log still
    showed stock."""

    name = "premature_sold_out"
    report_row = "premature sold-out answers"
    needs = (Fact.orders, Fact.order_times)
    needs_matching = True

    def run(self, run: Run) -> CheckResult:
        h = run.history
        sold_out = h[h["code"].eq("sold_out")].sort_values(["complete_ns", "op_id"], kind="stable")
        sale, log = last_sale_ns(run), log_sellout_ns(run)
        bounds = [b for b in (sale, log) if b is not None]
        if not bounds or sold_out.empty:
            return result(0, [], f"{len(sold_out)} sold_out answers, none before a later sale")
        by_sale = sold_out["complete_ns"].lt(sale) if sale is not None else False
        by_log = sold_out["complete_ns"].lt(log) if log is not None else False
        premature = sold_out[by_sale | by_log]
        start = run.manifest.get("load_start_ns") or int(h["intended_ns"].min())
        when = ", ".join(
            f"{what} at {(b - start) / NS_PER_S:+.3f} s"
            for what, b in (("last sale sent", sale), ("order log sold out", log))
            if b is not None
        )
        return result(
            len(premature),
            premature["op_id"],
            f"{len(premature)} of {len(sold_out)} sold_out answers came too early ({when})",
        )
