"""The `optimistic` strategy: WATCH stock+buyers, read, MULTI/EXEC; bounded retries, then 409 busy."""

from __future__ import annotations

from pydantic import Field
from redis.asyncio.client import Pipeline
from redis.exceptions import WatchError

from flashlab.system.backend import arm
from flashlab.system.backend import disarm
from flashlab.system.keys import ProductKeys
from flashlab.system.strategies.strategy import BUSY
from flashlab.system.strategies.strategy import ProductMeta
from flashlab.system.strategies.strategy import Purchase
from flashlab.system.strategies.strategy import PurchaseStrategy
from flashlab.system.strategies.strategy import StrategySettings


class OptimisticSettings(StrategySettings):
    # WATCH/EXEC retries after the first attempt before answering 409 busy.
    optimistic_retries: int = Field(default=3, ge=0, le=100)


class OptimisticStrategy(PurchaseStrategy):
    """Optimistic concurrency: no lock is held; a transaction that lost a race is discarded.

    A lost race (WatchError) is retried `optimistic_retries` times on the same connection; after
    that the shopper is told 409 busy and may come back."""

    name = "optimistic"
    Settings = OptimisticSettings

    async def buy(self, keys: ProductKeys, user_id: str, meta: ProductMeta) -> Purchase:
        async with self.redis.pipeline(transaction=True) as pipe:
            for _ in range(1 + self.settings_of(meta).optimistic_retries):
                try:
                    return await self._attempt(pipe, keys, user_id)
                except WatchError:
                    # Someone changed stock/buyers between our read and EXEC: the transaction
                    # was discarded, so a later failure in this request is not indeterminate.
                    disarm()
                    continue
        return BUSY

    async def _attempt(self, pipe: Pipeline, keys: ProductKeys, user_id: str) -> Purchase:
        await pipe.watch(keys.stock, keys.buyers)
        # After WATCH the pipeline runs commands immediately, on the watched connection.
        raw_stock = await pipe.get(keys.stock)
        is_buyer = await pipe.sismember(keys.buyers, user_id)
        # Early returns leave the WATCH to the pipeline's reset (UNWATCH) on context exit.
        if (refused := self.refusal(is_buyer, raw_stock)) is not None:
            return refused
        pipe.multi()
        self.queue_sale(pipe, keys, user_id)
        arm()
        remaining, _, seq = await pipe.execute()
        return self.sold(seq, remaining)
