"""The facts a run can offer its checks: what the requests carried, what the answers said, what the truth read.

The lab's own stack offers every fact. A backend the lab did not build (a target file,
flashlab.core.target) offers what its file describes: a shopper identity only if the buy
request sends `{user}`, order ids only if an answer rule extracts them, a stock or an order log
only if its `truth:` reads one. A check declares the facts it needs
(flashlab.analysis.checks.check.Check.needs); against a run that lacks one it is "n/a", with the
reason built from FACTS below, never a silent pass.

Where a run records them: manifest.json `facts` (the request and answer facts, written by the
lab), truth.json `fields` (what the truth read returned). A run made before either existed was
made on the lab's own stack, which offers everything.
"""

from __future__ import annotations

from collections.abc import Iterable
from collections.abc import Mapping
from enum import StrEnum
from typing import Any


class Fact(StrEnum):
    user = "user"
    order_id = "order_id"
    remaining = "remaining"
    stock = "stock"
    orders = "orders"
    order_users = "order_users"
    order_ids = "order_ids"
    order_times = "order_times"


# What each fact means, as a check's n/a reason says it ("needs <this>").
FACTS: dict[Fact, str] = {
    Fact.user: "a user identity sent with each request",
    Fact.order_id: "an order id in the acknowledgements",
    Fact.remaining: "the stock left, reported in the answers",
    Fact.stock: "the stock read as truth",
    Fact.orders: "the orders (or buyers) read as truth",
    Fact.order_users: "the buyer of each order read as truth",
    Fact.order_ids: "the order id of each order read as truth",
    Fact.order_times: "the server time of each order read as truth",
}
# Facts about what was sent and answered (manifest.json) and about the truth (truth.json).
CLIENT_FACTS = (Fact.user, Fact.order_id, Fact.remaining)
TRUTH_FACTS = (Fact.stock, Fact.orders, Fact.order_users, Fact.order_ids, Fact.order_times)
# truth.json `fields` -> the fact each gives.
TRUTH_FIELDS: dict[str, Fact] = {
    "stock": Fact.stock,
    "orders": Fact.orders,
    "user_id": Fact.order_users,
    "order_id": Fact.order_ids,
    "ts_ms": Fact.order_times,
}
ALL_TRUTH_FIELDS: tuple[str, ...] = tuple(TRUTH_FIELDS)


def facts_of(manifest: Mapping[str, Any], truth_fields: Iterable[str] | None) -> frozenset[Fact]:
    """The facts a run offers, from its manifest and its truth's `fields` (None: not recorded,
    the lab's own stack: all of them)."""
    recorded = manifest.get("facts")
    known = {f.value for f in Fact}
    client = set(CLIENT_FACTS) if recorded is None else {Fact(f) for f in recorded if f in known}
    fields = ALL_TRUTH_FIELDS if truth_fields is None else tuple(truth_fields)
    truth = {TRUTH_FIELDS[f] for f in fields if f in TRUTH_FIELDS}
    return frozenset(client | truth)


def missing(needs: Iterable[Fact], offered: frozenset[Fact]) -> list[Fact]:
    """The needed facts a run does not offer, in the order they were asked for."""
    return [fact for fact in needs if fact not in offered]


def needs_text(facts: Iterable[Fact]) -> str:
    """ "needs a user identity sent with each request and the stock read as truth"."""
    return "needs " + " and ".join(FACTS[f] for f in facts)
