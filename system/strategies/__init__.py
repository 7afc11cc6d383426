"""The purchase-strategy registry: strategy name (as stored in a product's meta) -> implementation.

The registry is the HTTP contract's `flashlab.core.contract.Strategy` enum (the names /admin/reset
accepts). Adding a strategy is one module `flashlab.system.strategies.<name>` with a
`<Name>Strategy(PurchaseStrategy)` class (its own `Settings` model, and its traits -
`rechecks_strategy`, `waiting_room`, `safe` - which the API and the lab read instead of naming
strategies) plus one line in that enum.
"""

from __future__ import annotations

import functools
from typing import Any

import redis.asyncio as aioredis
from pydantic import BaseModel
from pydantic import create_model

from flashlab.core.contract import Strategy
from flashlab.core.registry import Registry
from flashlab.system.strategies.strategy import Outcome
from flashlab.system.strategies.strategy import ProductMeta
from flashlab.system.strategies.strategy import Purchase
from flashlab.system.strategies.strategy import PurchaseStrategy
from flashlab.system.strategies.strategy import StrategySettings

STRATEGIES = Registry(
    "strategy",
    {s.value: f"flashlab.system.strategies.{s.value}:{s.value.title()}Strategy" for s in Strategy},
)


def strategy_class(name: str) -> type[PurchaseStrategy]:
    return STRATEGIES.load(name)


def settings_model(name: str) -> type[BaseModel]:
    """The strategy's own settings model (what /admin/reset and experiment files may tune)."""
    return strategy_class(name).Settings


@functools.cache
def all_settings_model() -> type[BaseModel]:
    """Every strategy's settings in one model (unknown keys refused): what a reset may carry.

    One product's reset may name settings of other strategies (one experiment file drives a
    matrix over strategies); the chosen strategy takes only its own (`settings_model`)."""
    fields: dict[str, Any] = {}
    for name in STRATEGIES:
        for key, info in settings_model(name).model_fields.items():
            fields[key] = (info.annotation, info)
    return create_model("AllStrategySettings", __base__=StrategySettings, **fields)


def needs_queue_protocol(strategy: str) -> bool:
    """True when shoppers must join the product's waiting room and poll it before buying (the
    strategy's `waiting_room` trait): the one place that decides it, for runs and benchmark drives."""
    return strategy_class(str(strategy)).waiting_room


def load_strategies(redis: aioredis.Redis) -> dict[str, PurchaseStrategy]:
    """Instantiate every registered strategy for one worker's Redis client."""
    return {name: strategy_class(name)(redis) for name in STRATEGIES}


__all__ = [
    "STRATEGIES",
    "Outcome",
    "ProductMeta",
    "Purchase",
    "PurchaseStrategy",
    "all_settings_model",
    "load_strategies",
    "needs_queue_protocol",
    "settings_model",
    "strategy_class",
]
