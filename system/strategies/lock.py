"""The `lock` strategy: a `SET NX PX` pessimistic lock per product; losers get 409 busy."""

from __future__ import annotations

import contextlib
import secrets

import redis.asyncio as aioredis
from pydantic import Field

from flashlab.system.backend import BACKEND_ERRORS
from flashlab.system.backend import arm
from flashlab.system.keys import ProductKeys
from flashlab.system.strategies.strategy import BUSY
from flashlab.system.strategies.strategy import ProductMeta
from flashlab.system.strategies.strategy import Purchase
from flashlab.system.strategies.strategy import PurchaseStrategy
from flashlab.system.strategies.strategy import StrategySettings

RELEASE_LUA = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


class LockSettings(StrategySettings):
    # The lock's expiry: a worker that dies holding it blocks the product at most this long.
    lock_ttl_ms: int = Field(default=2_000, ge=10, le=60_000)


class LockStrategy(PurchaseStrategy):
    """The reference's phase 2 (docs/REFERENCE.md): one buyer at a time per product.

    The lock is released with a compare-and-delete script, so a worker whose lock expired (its
    TTL) can never delete a lock another worker now holds."""

    name = "lock"
    Settings = LockSettings

    def __init__(self, redis: aioredis.Redis) -> None:
        super().__init__(redis)
        self._release = redis.register_script(RELEASE_LUA)

    async def buy(self, keys: ProductKeys, user_id: str, meta: ProductMeta) -> Purchase:
        token = secrets.token_hex(8)
        if not await self.redis.set(
            keys.lock, token, nx=True, px=self.settings_of(meta).lock_ttl_ms
        ):
            return BUSY
        try:
            return await self._locked_buy(keys, user_id)
        finally:
            await self._release_quietly(keys, token)

    async def _locked_buy(self, keys: ProductKeys, user_id: str) -> Purchase:
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.sismember(keys.buyers, user_id)
            pipe.get(keys.stock)
            is_buyer, raw_stock = await pipe.execute()
        if (refused := self.refusal(is_buyer, raw_stock)) is not None:
            return refused
        arm()
        async with self.redis.pipeline(transaction=False) as pipe:
            self.queue_sale(pipe, keys, user_id)
            remaining, _, seq = await pipe.execute()
        return self.sold(seq, remaining)

    async def _release_quietly(self, keys: ProductKeys, token: str) -> None:
        # A failed release must not turn a committed purchase into an error: the lock's TTL
        # frees it anyway. The purchase's own errors (if any) still propagate from `buy`.
        with contextlib.suppress(*BACKEND_ERRORS):
            await self._release(keys=[keys.lock], args=[token])
