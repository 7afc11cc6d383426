"""The purchase-strategy interface: product meta, purchase outcomes, and the shared order-recording script.

A strategy turns (product, user) into one `Purchase`. It may raise any Redis error; the app maps
those to 503 and asks `flashlab.system.backend` whether a write may have been sent (`arm()` marks the
point after which a failure is indeterminate).

Order ids (`RECORD_ORDER_LUA`, and the `lua`/`queue` scripts) are `o-<INCR order_seq>`: unique in
one Redis lifetime only. An empty restart loses the sequence with the product, and a re-seeded
product numbers from o-1 again, so the lab's checks match orders on (order id, user id), never the
id alone (docs/CONTRACT.md, flashlab.analysis.checks.check.order_keys).
"""

from __future__ import annotations

from abc import ABC
from abc import abstractmethod
from dataclasses import dataclass
from enum import Enum
from typing import Any
from typing import ClassVar

import redis.asyncio as aioredis
from pydantic import BaseModel
from pydantic import ConfigDict
from pydantic import ValidationInfo
from pydantic import field_validator
from redis.typing import EncodableT
from redis.typing import FieldT

from flashlab.core.contract import json_number
from flashlab.system.keys import ProductKeys
from flashlab.system.keys import order_id


class Outcome(Enum):
    ok = "ok"
    busy = "busy"
    already_purchased = "already_purchased"
    sold_out = "sold_out"
    # The product's strategy changed under a cached meta (a reset); the app re-reads meta and redispatches.
    stale = "stale"
    not_found = "not_found"
    # Strategy `queue` only: the user holds no admitted ticket / the admission ran out.
    not_admitted = "not_admitted"
    admission_expired = "admission_expired"


@dataclass(frozen=True, slots=True)
class Purchase:
    outcome: Outcome
    order_id: str | None = None
    remaining: int | None = None


BUSY = Purchase(Outcome.busy)
ALREADY = Purchase(Outcome.already_purchased)
SOLD_OUT = Purchase(Outcome.sold_out)
STALE = Purchase(Outcome.stale)
NOT_FOUND = Purchase(Outcome.not_found)


@dataclass(frozen=True, slots=True)
class ProductMeta:
    """The `meta` hash of one product, as written by /admin/reset."""

    strategy: str
    stock_initial: int
    price_cents: int
    settings: str = "{}"  # JSON of the strategy's own Settings model, validated at reset
    rate_limit: str = ""  # JSON of contract.RateLimit when the reset switched it on, else ""

    @classmethod
    def from_hash(cls, raw: dict[str, str]) -> ProductMeta | None:
        """None when the product does not exist (empty hash) or the hash is not ours."""
        if not raw or "strategy" not in raw:
            return None
        return cls(
            strategy=raw["strategy"],
            stock_initial=int(raw.get("stock_initial", 0)),
            price_cents=int(raw.get("price_cents", 0)),
            settings=raw.get("settings", "{}"),
            rate_limit=raw.get("rate_limit", ""),
        )

    def to_hash(self) -> dict[FieldT, EncodableT]:
        return {
            "strategy": self.strategy,
            "stock_initial": self.stock_initial,
            "price_cents": self.price_cents,
            "settings": self.settings,
            "rate_limit": self.rate_limit,
        }


# Appends one order to the log: INCR order_seq, server TIME, XADD. Returns the sequence number.
# Used by naive/lock/optimistic as plain EVAL inside their pipelines/transactions (EVAL, not
# EVALSHA: a NOSCRIPT inside MULTI would leave the transaction half-applied). The order id
# format must stay in sync with flashlab.system.keys.order_id ("o-<seq>").
RECORD_ORDER_LUA = """
local seq = redis.call('INCR', KEYS[2])
local t = redis.call('TIME')
local ts_ms = t[1] .. string.format('%03d', math.floor(tonumber(t[2]) / 1000))
redis.call('XADD', KEYS[1], '*', 'order_id', 'o-' .. seq, 'user_id', ARGV[1], 'ts_ms', ts_ms)
return seq
"""


def record_order(pipe: Any, keys: ProductKeys, user_id: str) -> None:
    """Queue the order-log append on a pipeline (its reply is the order sequence number)."""
    pipe.eval(RECORD_ORDER_LUA, 2, keys.orders, keys.order_seq, user_id)


class StrategySettings(BaseModel):
    """Base of every strategy's `Settings`: unknown keys refused, numbers must be JSON numbers
    (flashlab.core.contract.json_number, as for the rest of the reset)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    @field_validator("*", mode="before")
    @classmethod
    def _json_numbers(cls, value: Any, info: ValidationInfo) -> Any:
        numeric = info.field_name and cls.model_fields[info.field_name].annotation in (int, float)
        return json_number(value) if numeric else value


class NoSettings(StrategySettings):
    """A strategy without settings: any setting given to it is an error."""


class PurchaseStrategy(ABC):
    """One way to sell a unit. Instances are per worker and shared by all requests.

    `Settings` is the strategy's own pydantic model of what a reset may tune (e.g. lock's TTL):
    /admin/reset validates `settings` against it, stores it as JSON in the product's meta, and
    `settings_of(meta)` hands the typed value back, parsed once per distinct JSON string.
    Its traits (class variables, e.g. `rechecks_strategy`) tell the API service how to treat it.
    """

    name: str
    Settings: ClassVar[type[BaseModel]] = NoSettings
    # A trait: True when every script of the strategy first checks, atomically, that the product
    # still uses this strategy and answers `stale` otherwise (after a reset). Such a strategy
    # can be handed a cached product meta; any other gets a meta read afresh on every request.
    rechecks_strategy: ClassVar[bool] = False
    # A trait: True when a buyer must first join the product's waiting room and poll it until
    # admitted (the strategy also has `join` and `status`, which the API's queue endpoints call).
    # Shoppers of such a product speak that protocol (flashlab.system.strategies.needs_queue_protocol).
    waiting_room: ClassVar[bool] = False
    # A trait: False for a strategy kept to show a race (it oversells under contention): the
    # lab's matrix expects its cells to fail; every other strategy is expected to pass.
    safe: ClassVar[bool] = True

    def __init__(self, redis: aioredis.Redis) -> None:
        self.redis = redis
        self._parsed: dict[str, BaseModel] = {}

    def settings_of(self, meta: ProductMeta) -> Any:
        parsed = self._parsed.get(meta.settings)
        if parsed is None:
            parsed = self.Settings.model_validate_json(meta.settings)
            if len(self._parsed) < 1_000:  # bounded: one entry per distinct reset
                self._parsed[meta.settings] = parsed
        return parsed

    @abstractmethod
    async def buy(self, keys: ProductKeys, user_id: str, meta: ProductMeta) -> Purchase:
        """Try to sell one unit of `keys.product_id` to `user_id`."""

    # The steps the read-then-write strategies share (naive, lock, optimistic); no Redis calls.

    @staticmethod
    def refusal(is_buyer: Any, stock: Any) -> Purchase | None:
        """The check before a sale: ALREADY for a returning buyer, else SOLD_OUT when `stock` (a
        raw GET reply or an int) is not positive; None when the sale may go ahead."""
        if is_buyer:
            return ALREADY
        if int(stock or 0) <= 0:
            return SOLD_OUT
        return None

    @staticmethod
    def queue_sale(pipe: Any, keys: ProductKeys, user_id: str) -> None:
        """Queue the sale's writes on a pipeline: DECR stock, SADD buyer, the order-log append
        (replies: remaining, added, seq). Local only: the caller arms and executes."""
        pipe.decr(keys.stock).sadd(keys.buyers, user_id)
        record_order(pipe, keys, user_id)

    @staticmethod
    def sold(seq: Any, remaining: Any) -> Purchase:
        """The ok outcome for order sequence number `seq` with `remaining` units left."""
        return Purchase(Outcome.ok, order_id(int(seq)), int(remaining))
