"""The shop's domain service for one worker: sell, queue, reset and read products over Redis (no HTTP).

`ShopService` owns the worker's Redis backend, its strategy instances, the rate limiter and a
product-meta cache. It takes plain values (keys, user ids, validated requests) and returns
domain values (`Purchase`, `QueueStatus`, `Product`); failures are raised as REQUEST_ERRORS
(`flashlab.system.api.errors`), which the callers turn into replies.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable
from collections.abc import Callable
from typing import Any
from typing import cast

from flashlab.core.contract import ErrorCode
from flashlab.core.contract import Product
from flashlab.core.contract import QueueState
from flashlab.core.contract import QueueStatus
from flashlab.core.contract import ResetRequest
from flashlab.core.contract import Strategy
from flashlab.system import metrics
from flashlab.system.api.errors import BadInput
from flashlab.system.api.errors import RateLimited
from flashlab.system.backend import Backend
from flashlab.system.keys import ProductKeys
from flashlab.system.ratelimit import RateLimiter
from flashlab.system.settings import Settings
from flashlab.system.strategies import Outcome
from flashlab.system.strategies import ProductMeta
from flashlab.system.strategies import Purchase
from flashlab.system.strategies import PurchaseStrategy
from flashlab.system.strategies import load_strategies

META_TTL_S = 1.0  # how long a worker trusts a cached product meta (`rechecks_strategy` only)


class ShopService:
    """Per-worker state: the Redis backend, strategy instances, and a product-meta cache."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.backend = Backend(settings)
        self.strategies: dict[str, PurchaseStrategy] = load_strategies(self.backend.redis)
        self.limiter = RateLimiter(self.backend.redis)
        # A meta is trusted from cache only for the strategies whose scripts re-check the strategy
        # atomically and answer "stale" after a reset (their `rechecks_strategy` trait); every
        # other strategy re-reads meta. Trusted for META_TTL_S only, so a reset that keeps the
        # strategy but changes the rate limit reaches every worker within that time.
        self._cacheable = frozenset(n for n, s in self.strategies.items() if s.rechecks_strategy)
        self._meta: dict[str, tuple[ProductMeta, float]] = {}  # product id -> (meta, expiry)

    async def load_meta(self, keys: ProductKeys) -> ProductMeta | None:
        raw = await self.backend.redis.hgetall(keys.meta)
        meta = ProductMeta.from_hash(cast("dict[str, str]", raw))  # decode_responses=True
        if meta is None:
            self._meta.pop(keys.product_id, None)
        elif len(self._meta) < 10_000 or keys.product_id in self._meta:
            self._meta[keys.product_id] = (meta, time.monotonic() + META_TTL_S)
        return meta

    async def cached_meta(self, keys: ProductKeys) -> ProductMeta | None:
        cached = self._meta.get(keys.product_id)
        if (
            cached is None
            or cached[1] < time.monotonic()
            or cached[0].strategy not in self._cacheable
        ):
            return await self.load_meta(keys)
        return cached[0]

    async def limit(self, keys: ProductKeys, meta: ProductMeta | None, user: str, ip: str) -> None:
        """Spend a rate-limit token when the product has a limit; RateLimited when empty."""
        limit = self.limiter.limit_of(meta.rate_limit) if meta is not None else None
        if limit is not None:
            wait_ms = await self.limiter.wait_ms(keys, limit, user, ip)
            if wait_ms > 0:
                raise RateLimited(wait_ms)

    async def purchase(self, keys: ProductKeys, user_id: str, ip: str = "") -> tuple[str, Purchase]:
        """Sell one unit to `user_id`: (the strategy that answered, its Purchase)."""
        meta = await self.cached_meta(keys)
        await self.limit(keys, meta, user_id, ip)
        for _ in range(2):  # at most one redispatch after a reset changed the strategy
            if meta is None:
                break
            strategy = self.strategies.get(meta.strategy)
            if strategy is None:
                raise BadInput(ErrorCode.not_found, f"product has unknown strategy {meta.strategy}")
            result = await strategy.buy(keys, user_id, meta)
            if result.outcome is not Outcome.stale:
                return meta.strategy, result
            meta = await self.load_meta(keys)
        return "", Purchase(Outcome.not_found)

    def queue_join(self, keys: ProductKeys, user_id: str, ip: str = "") -> Awaitable[Any]:
        """Join (or refresh) the waiting room: a QueueStatus, or a Purchase refusal."""

        async def join(strategy: Any, meta: ProductMeta) -> Any:
            await self.limit(keys, meta, user_id, ip)
            result = await strategy.join(keys, user_id, meta)
            # Joining a line that can no longer sell is "sold out", as on the buy path.
            sold_out = isinstance(result, QueueStatus) and result.state is QueueState.sold_out
            return Purchase(Outcome.sold_out) if sold_out else result

        return self._queue_call(keys, join)

    def queue_status(self, keys: ProductKeys, ticket: int) -> Awaitable[Any]:
        """One ticket's state: a QueueStatus, or a Purchase refusal."""

        async def status(strategy: Any, meta: ProductMeta) -> Any:
            return await strategy.status(keys, ticket, meta)

        return self._queue_call(keys, status)

    async def _queue_strategy(self, keys: ProductKeys) -> tuple[Any, ProductMeta]:
        """The product's strategy (one with a `waiting_room`) and its meta; 404 when the product
        has no waiting room."""
        meta = await self.cached_meta(keys)
        strategy = self.strategies.get(meta.strategy) if meta is not None else None
        if meta is None or strategy is None or not strategy.waiting_room:
            raise BadInput(ErrorCode.not_found, f"product {keys.product_id} has no waiting room")
        return strategy, meta

    async def _queue_call(
        self, keys: ProductKeys, call: Callable[[Any, ProductMeta], Awaitable[Any]]
    ) -> Any:
        """Run a waiting-room script (re-reading meta once if a reset changed the strategy)."""
        result = None
        for _ in range(2):
            strategy, meta = await self._queue_strategy(keys)
            result = await call(strategy, meta)
            if not (isinstance(result, Purchase) and result.outcome is Outcome.stale):
                break
            self._meta.pop(keys.product_id, None)
        return result

    async def product(self, product_id: str) -> Product | None:
        """The product's state (and its stock gauge set), or None for an unknown product."""
        keys = ProductKeys(product_id)
        async with self.backend.redis.pipeline(transaction=False) as pipe:
            pipe.hgetall(keys.meta)
            pipe.get(keys.stock)
            pipe.xlen(keys.orders)
            raw_meta, raw_stock, sold = await pipe.execute()
        meta = ProductMeta.from_hash(raw_meta)
        if meta is None:
            return None
        stock = int(raw_stock or 0)
        metrics.stock(product_id, stock)
        return Product(
            product_id=product_id,
            stock=stock,
            stock_initial=meta.stock_initial,
            price_cents=meta.price_cents,
            strategy=Strategy(meta.strategy),
            sold=int(sold),
        )

    async def reset(self, req: ResetRequest, settings_json: str) -> None:
        """Start the product over: stock, no buyers, orders or queue, the new meta."""
        keys = ProductKeys(req.product_id)
        meta = ProductMeta(
            strategy=req.strategy.value,
            stock_initial=req.stock,
            price_cents=req.price_cents,
            settings=settings_json,
            rate_limit=req.rate_limit.model_dump_json(by_alias=True) if req.rate_limit else "",
        )
        async with self.backend.redis.pipeline(transaction=True) as pipe:
            pipe.delete(keys.buyers, keys.orders, keys.lock, keys.order_seq, keys.meta)
            pipe.delete(*keys.queue())
            pipe.set(keys.stock, req.stock)
            pipe.hset(keys.meta, mapping=meta.to_hash())
            await pipe.execute()
        self._meta.pop(req.product_id, None)
        metrics.stock(req.product_id, req.stock)

    async def ready(self) -> bool:
        """Does Redis answer PING in time?"""
        return await self.backend.ping()

    async def close(self) -> None:
        await self.backend.close()
