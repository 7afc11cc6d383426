"""The stack a benchmark measures: a local platform, product resets, request bodies."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from typing import Any

from flashlab.core.platform import StackConfig


@contextlib.contextmanager
def local_stack(workers: int = 2, **config: Any) -> Iterator[tuple[Any, Any]]:
    """A LocalPlatform (prometheus off unless asked) and its StackInfo; always stopped."""
    # start-up cost: only this path pays for jinja2, redis, httpx
    from flashlab.system.platforms.local import LocalPlatform

    config.setdefault("prometheus", False)
    platform_ = LocalPlatform(StackConfig(workers=workers, **config))
    try:
        info = platform_.start()
        yield platform_, info
    finally:
        platform_.stop()


def reset_product(
    info: Any, product_id: str, stock: int, strategy: str, **extra: Any
) -> dict[str, Any]:
    """Reset a product through the admin API (clears orders and buyers)."""
    # start-up cost: only this path pays for httpx, pydantic, rich
    from flashlab.core.contract import ResetRequest
    from flashlab.core.contract import Strategy
    from flashlab.system.admin import AdminClient

    admin = AdminClient(info.base_url, info.admin_token)
    try:
        admin.wait_ready(timeout_s=30)
        ok = admin.reset(
            ResetRequest(product_id=product_id, stock=stock, strategy=Strategy(strategy), **extra)
        )
    finally:
        close = getattr(admin, "close", None)
        if callable(close):
            close()
    return ok.model_dump(mode="json")


def buy_body(product_id: str) -> str:
    return json.dumps({"productId": product_id}, separators=(",", ":"))
