"""The purchase-strategy registry: strategy name (as stored in a product's meta) -> implementation.

Adding a strategy is one module implementing `PurchaseStrategy` plus one line here (and its
name in `flashlab.core.contract.Strategy`, which /admin/reset validates against).
"""

from __future__ import annotations

import importlib

import redis.asyncio as aioredis

from flashlab.system.strategies.base import Outcome, ProductMeta, Purchase, PurchaseStrategy

STRATEGIES: dict[str, str] = {
    "naive": "flashlab.system.strategies.naive:NaiveStrategy",
    "lock": "flashlab.system.strategies.lock:LockStrategy",
    "optimistic": "flashlab.system.strategies.optimistic:OptimisticStrategy",
    "lua": "flashlab.system.strategies.lua:LuaStrategy",
}


def load_strategies(redis: aioredis.Redis) -> dict[str, PurchaseStrategy]:
    """Instantiate every registered strategy for one worker's Redis client."""
    loaded: dict[str, PurchaseStrategy] = {}
    for name, target in STRATEGIES.items():
        module, cls = target.split(":")
        loaded[name] = getattr(importlib.import_module(module), cls)(redis)
    return loaded


__all__ = [
    "STRATEGIES",
    "Outcome",
    "ProductMeta",
    "Purchase",
    "PurchaseStrategy",
    "load_strategies",
]
