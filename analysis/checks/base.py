"""What a consistency check is: its declaration (name, summary key, description, clause class) and its result.

A check is one `Check` subclass: `name` (the row in checks / the report / JUnit), `key` (the
summary.json count a hypothesis clause can name; default: the name, e.g. `oversell`; None:
reported but not in the clause vocabulary), `figures` (further summary.json numbers the check
measures, each a clause key too), its docstring (the first paragraph is `description`: one line
for docs and the report), `report_row` (its label among the report's key numbers; None: only in
the checks table), `clause_class` (how the verdict treats clauses on its key: "safety" always
decides) and `run(run) -> CheckResult`. Examples are ids a human can look up (op ids
`<shopper>:<attempt>`, order ids, user ids), at most MAX_EXAMPLES. A check never imports
another; shared frames are the helpers below.
"""

from __future__ import annotations

from abc import ABC
from abc import abstractmethod
from collections.abc import Iterable
from dataclasses import asdict
from dataclasses import dataclass
from dataclasses import field
from typing import Any
from typing import ClassVar
from typing import Literal

import pandas as pd

from flashlab.core.registry import doc_summary
from flashlab.core.rundir import Run

MAX_EXAMPLES = 10
ClauseClass = Literal["safety", "timing"]


@dataclass
class CheckResult:
    """ok True/False, or None when the check could not run ("unknown", Jepsen's :unknown)."""

    ok: bool | None
    count: int | None
    examples: list[str] = field(default_factory=list)
    detail: str = ""
    figures: dict[str, float | int | None] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        if not self.figures:  # the summary's `checks.<name>` keeps its shape for figure-less checks
            out.pop("figures")
        return out


def result(
    count: int, examples: Iterable[Any], detail: str, figures: dict[str, Any] | None = None
) -> CheckResult:
    """A result whose `ok` is `count == 0`, examples capped at MAX_EXAMPLES."""
    return CheckResult(
        ok=count == 0,
        count=int(count),
        examples=[str(e) for e in list(examples)[:MAX_EXAMPLES]],
        detail=detail,
        figures=dict(figures or {}),
    )


def unknown(exc: BaseException) -> CheckResult:
    """The result of a check that raised: neither pass nor fail, with the error's first line."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return CheckResult(
        ok=None, count=None, detail=f"could not run: {type(exc).__name__}: {text}".rstrip()
    )


class Check(ABC):
    name: ClassVar[str]
    key: ClassVar[str | None]  # default: `name`
    description: ClassVar[str]
    figures: ClassVar[tuple[str, ...]] = ()
    report_row: ClassVar[str | None] = None
    clause_class: ClassVar[ClauseClass] = "safety"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "key" not in cls.__dict__ and "name" in cls.__dict__:
            cls.key = cls.name  # most checks' count is summary.json's key of the same name
        if "description" not in cls.__dict__ and "name" in cls.__dict__:
            cls.description = doc_summary(cls) or ""

    @abstractmethod
    def run(self, run: Run) -> CheckResult:
        """Judge one run directory."""

    def summary_keys(self) -> tuple[str, ...]:
        """Every summary.json key this check fills (its count, then its figures)."""
        return ((self.key,) if self.key else ()) + self.figures


# --- frames several checks share ---------------------------------------------------------------


def orders_frame(run: Run) -> pd.DataFrame:
    """Redis truth's order log as a frame: order_id, user_id, ts_ms (server time)."""
    orders = run.truth.orders
    return pd.DataFrame(
        {
            "order_id": pd.Series([o.order_id for o in orders], dtype="object"),
            "user_id": pd.Series([o.user_id for o in orders], dtype="object"),
            "ts_ms": pd.Series([o.ts_ms for o in orders], dtype="int64"),
        }
    )


def ok_ops(run: Run) -> pd.DataFrame:
    h = run.history
    return h[h["type"].eq("ok")]


def excess_order_keys(run: Run) -> set[str]:
    """Orders beyond stock_initial, latest first by server time: the oversold units, as
    `order_keys` (order id and user, so an id reused after an empty restart is not confused)."""
    orders = orders_frame(run).sort_values(["ts_ms", "order_id"], kind="stable")
    excess = max(0, len(orders) - run.truth.stock_initial)
    return set(order_keys(orders).iloc[len(orders) - excess :]) if excess else set()


def order_keys(frame: pd.DataFrame) -> pd.Series:
    """(order id, user id) of each row as one key: an order is matched on both, never the id alone.

    Order ids are a per-Redis counter (`o-<seq>`): a Redis that restarts empty and is re-seeded
    numbers its orders from o-1 again, so an id alone could "find" an acknowledged order that was
    lost by matching a new order of someone else. The same user holding the same id in two Redis
    lifetimes would be a second purchase by that user, which duplicate_purchases reports."""
    return frame["order_id"].astype("object") + "\x00" + frame["user_id"].astype("object")
