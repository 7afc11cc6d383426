"""The purchase-strategy registry: strategy name (as stored in a product's meta) -> implementation.

The registry is the HTTP contract's `flashlab.core.contract.Strategy` enum (the names /admin/reset
accepts). Adding a strategy is one module `flashlab.system.strategies.<name>` with a
`<Name>Strategy(PurchaseStrategy)` class (and its own `Settings` model) plus one line in that enum.
"""

from __future__ import annotations

import importlib

import redis.asyncio as aioredis
from pydantic import BaseModel

from flashlab.core.contract import Strategy
from flashlab.system.strategies.base import Outcome, ProductMeta, Purchase, PurchaseStrategy

STRATEGIES: dict[str, str] = {
    s.value: f"flashlab.system.strategies.{s.value}:{s.value.title()}Strategy" for s in Strategy
}


def strategy_class(name: str) -> type[PurchaseStrategy]:
    module, cls = STRATEGIES[name].split(":")
    return getattr(importlib.import_module(module), cls)


def settings_model(name: str) -> type[BaseModel]:
    """The strategy's own settings model (what /admin/reset and experiment files may tune)."""
    return strategy_class(name).Settings


def load_strategies(redis: aioredis.Redis) -> dict[str, PurchaseStrategy]:
    """Instantiate every registered strategy for one worker's Redis client."""
    return {name: strategy_class(name)(redis) for name in STRATEGIES}


__all__ = [
    "STRATEGIES",
    "Outcome",
    "ProductMeta",
    "Purchase",
    "PurchaseStrategy",
    "load_strategies",
    "settings_model",
    "strategy_class",
]
