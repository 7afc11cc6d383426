"""The simulator: shopper scenarios and behaviours, seeded schedules, engines and the operation history.

`CLIENTS` is the registry of shopper HTTP clients (flashlab.simulator.client): listing the names
imports none of them (the CLI's `--client` choices, the experiment schema).
"""

from __future__ import annotations

from flashlab.core.registry import Registry

CLIENTS = Registry(
    "client",
    {
        "aiohttp": "flashlab.simulator.client:AiohttpClient",
        "httpx": "flashlab.simulator.client:HttpxClient",
        "raw": "flashlab.simulator.client:RawClient",
    },
)

__all__ = ["CLIENTS"]
