"""The `naive` strategy: read stock, then write stock-1 — non-atomic on purpose, so it oversells."""

from __future__ import annotations

import asyncio

from pydantic import Field

from flashlab.system.backend import arm
from flashlab.system.keys import ProductKeys
from flashlab.system.strategies.strategy import ProductMeta
from flashlab.system.strategies.strategy import Purchase
from flashlab.system.strategies.strategy import PurchaseStrategy
from flashlab.system.strategies.strategy import StrategySettings
from flashlab.system.strategies.strategy import record_order


class NaiveSettings(StrategySettings):
    # Sleep between the read and the write: widens the race window reproducibly.
    naive_delay_ms: float = Field(default=0.0, ge=0, le=5_000)


class NaiveStrategy(PurchaseStrategy):
    """The reference's phase 1 (docs/REFERENCE.md): the lost update, kept on purpose.

    The optional `naive_delay_ms` sleep between the read and the write widens the race window,
    so concurrent buyers reliably read the same stock value."""

    name = "naive"
    Settings = NaiveSettings
    safe = False  # the lost update, on purpose

    async def buy(self, keys: ProductKeys, user_id: str, meta: ProductMeta) -> Purchase:
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.get(keys.stock)
            pipe.sismember(keys.buyers, user_id)
            raw_stock, is_buyer = await pipe.execute()
        stock = int(raw_stock or 0)
        if (refused := self.refusal(is_buyer, stock)) is not None:
            return refused
        delay_ms = self.settings_of(meta).naive_delay_ms
        if delay_ms > 0:
            await asyncio.sleep(delay_ms / 1000.0)
        arm()
        async with self.redis.pipeline(transaction=False) as pipe:
            # The lost update: SET of a value computed from a stale read.
            pipe.set(keys.stock, stock - 1)
            pipe.sadd(keys.buyers, user_id)
            record_order(pipe, keys, user_id)
            _, _, seq = await pipe.execute()
        return self.sold(seq, stock - 1)
