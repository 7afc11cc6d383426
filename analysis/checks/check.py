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

A check declares the facts it needs (`needs`, all of them; `needs_one_of`, at least one;
flashlab.core.facts): a run that lacks one (a backend the lab did not build, whose target file
sends no user id or reads no truth) gets a "n/a" result with the reason, never a silent pass.
Orders are matched to acknowledgements on what both sides carry (`match_on`): order id and user
on the lab's own stack, else the order id alone, else the user alone.
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

from flashlab.core.facts import Fact
from flashlab.core.facts import facts_of
from flashlab.core.facts import missing
from flashlab.core.facts import needs_text
from flashlab.core.registry import doc_summary
from flashlab.core.rundir import Run

MAX_EXAMPLES = 10
ClauseClass = Literal["safety", "timing"]


@dataclass
class CheckResult:
    """ok True/False, or None when the check could not run ("unknown", Jepsen's :unknown) or
    does not apply to this run (`na` holds why: the facts it needs are missing)."""

    ok: bool | None
    count: int | None
    examples: list[str] = field(default_factory=list)
    detail: str = ""
    figures: dict[str, float | int | None] = field(default_factory=dict)
    na: str | None = None

    @property
    def status(self) -> str:
        """pass | fail | unknown | n/a"""
        if self.na is not None:
            return "n/a"
        return "unknown" if self.ok is None else "pass" if self.ok else "fail"

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        if not self.figures:  # the summary's `checks.<name>` keeps its shape for figure-less checks
            out.pop("figures")
        if self.na is None:
            out.pop("na")
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


def not_applicable(reason: str) -> CheckResult:
    """The result of a check this run cannot answer: neither pass nor fail, with the reason."""
    return CheckResult(ok=None, count=None, detail=f"n/a: {reason}", na=reason)


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
    needs: ClassVar[tuple[Fact, ...]] = ()  # every one of these
    needs_one_of: ClassVar[tuple[Fact, ...]] = ()  # at least one of these
    needs_matching: ClassVar[bool] = False  # orders matched to acknowledgements (match_on)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "key" not in cls.__dict__ and "name" in cls.__dict__:
            cls.key = cls.name  # most checks' count is summary.json's key of the same name
        if "description" not in cls.__dict__ and "name" in cls.__dict__:
            cls.description = doc_summary(cls) or ""

    @abstractmethod
    def run(self, run: Run) -> CheckResult:
        """Judge one run directory."""

    def not_applicable(self, offered: frozenset[Fact]) -> str | None:
        """Why this check cannot judge a run offering `offered` (None: it can)."""
        gone = missing(self.needs, offered)
        if gone:
            return needs_text(gone)
        if self.needs_one_of and not set(self.needs_one_of) & offered:
            return " or ".join(needs_text([f]) for f in self.needs_one_of) + " (it offers neither)"
        if self.needs_matching and match_on(offered) is None:
            return (
                "needs to match orders to acknowledgements: order ids in both the answers and "
                "the truth, or a user id in both the requests and the truth"
            )
        return None

    def summary_keys(self) -> tuple[str, ...]:
        """Every summary.json key this check fills (its count, then its figures)."""
        return ((self.key,) if self.key else ()) + self.figures


# --- facts and matching ------------------------------------------------------------------------


def run_facts(run: Run) -> frozenset[Fact]:
    """The facts `run` offers: from manifest.json `facts` and truth.json `fields`."""
    return facts_of(run.manifest, run.truth.fields)


def match_on(offered: frozenset[Fact]) -> tuple[str, ...] | None:
    """The columns an order and an acknowledgement are matched on, given the run's facts: both
    (order id and user) when both sides carry both, else the order id, else the user; None when
    nothing is carried on both sides."""
    ids = {Fact.order_id, Fact.order_ids} <= offered
    users = {Fact.user, Fact.order_users} <= offered
    if ids and users:
        return ("order_id", "user_id")
    if ids:
        return ("order_id",)
    if users:
        return ("user_id",)
    return None


def match_keys(frame: pd.DataFrame, on: tuple[str, ...]) -> pd.Series:
    """The matching key of each row (`order_keys` when matched on both)."""
    if on == ("order_id", "user_id"):
        return order_keys(frame)
    return frame[on[0]].astype("object")


def run_match_on(run: Run) -> tuple[str, ...]:
    """match_on for this run; the checks that need it declare `needs_matching`."""
    on = match_on(run_facts(run))
    assert on is not None, "checked by not_applicable before the check ran"
    return on


# --- frames several checks share ---------------------------------------------------------------


def orders_frame(run: Run) -> pd.DataFrame:
    """The truth's order log as a frame: order_id, user_id, ts_ms (server time; null where the
    backend records none)."""
    orders = run.truth.orders
    return pd.DataFrame(
        {
            "order_id": pd.Series([o.order_id for o in orders], dtype="object"),
            "user_id": pd.Series([o.user_id for o in orders], dtype="object"),
            "ts_ms": pd.Series([o.ts_ms for o in orders], dtype="Int64"),
        }
    )


def ok_ops(run: Run) -> pd.DataFrame:
    h = run.history
    return h[h["type"].eq("ok")]


def excess_order_keys(run: Run, on: tuple[str, ...] = ("order_id", "user_id")) -> set[str]:
    """Orders beyond stock_initial, latest first by server time: the oversold units, as
    `match_keys` (by default order id and user, so an id reused after an empty restart is not
    confused)."""
    orders = orders_frame(run).sort_values(["ts_ms", "order_id"], kind="stable")
    excess = max(0, len(orders) - run.truth.stock_initial)
    return set(match_keys(orders, on).iloc[len(orders) - excess :]) if excess else set()


def order_keys(frame: pd.DataFrame) -> pd.Series:
    """(order id, user id) of each row as one key: an order is matched on both, never the id alone.

    Order ids are a per-Redis counter (`o-<seq>`): a Redis that restarts empty and is re-seeded
    numbers its orders from o-1 again, so an id alone could "find" an acknowledged order that was
    lost by matching a new order of someone else. The same user holding the same id in two Redis
    lifetimes would be a second purchase by that user, which duplicate_purchases reports."""
    return frame["order_id"].astype("object") + "\x00" + frame["user_id"].astype("object")
