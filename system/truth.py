"""The lab's truth channel: a product's final state read straight from Redis (never through the API).

Also where a scratch product is removed again (`drop_product`, after the capacity probe).
"""

from __future__ import annotations

import time
from typing import Any
from typing import cast

import redis

from flashlab.core.rundir import Truth
from flashlab.core.rundir import TruthOrder
from flashlab.system.keys import ProductKeys

INFO_FIELDS = (
    "redis_version",
    "uptime_in_seconds",
    "run_id",
    "aof_enabled",
    "rdb_last_save_time",
    "rdb_changes_since_last_save",
    "aof_last_write_status",
    "loading",
)


def _orders(client: redis.Redis, keys: ProductKeys) -> list[TruthOrder]:
    orders: list[TruthOrder] = []
    # Page through the stream: orders can be many (10k+) and one XRANGE reply is unbounded.
    start = "-"
    while True:
        # decode_responses=True: ids and fields are str (redis-py's types say bytes | str | None).
        page = cast(
            "list[tuple[str, dict[str, str]]]",
            client.xrange(keys.orders, min=start, max="+", count=5000),
        )
        for _, fields in page:
            orders.append(
                TruthOrder(
                    order_id=fields.get("order_id", ""),
                    user_id=fields.get("user_id", ""),
                    ts_ms=int(fields.get("ts_ms", 0)),
                )
            )
        if len(page) < 5000:
            return orders
        start = "(" + page[-1][0]


def read_truth(redis_url: str, product_id: str, timeout_s: float = 10.0) -> Truth:
    """Stock, initial stock, strategy, buyers and the order log of one product, plus a few INFO fields."""
    client = redis.Redis.from_url(
        redis_url, decode_responses=True, socket_timeout=timeout_s, socket_connect_timeout=timeout_s
    )
    try:
        keys = ProductKeys(product_id)
        read_at_ns = time.time_ns()
        pipe = client.pipeline(transaction=True)  # one consistent snapshot of the scalars
        pipe.hgetall(keys.meta)
        pipe.get(keys.stock)
        pipe.smembers(keys.buyers)
        meta, stock, buyers = pipe.execute()
        orders = _orders(client, keys)
        info: dict[str, Any] = client.info()
    finally:
        client.close()
    return Truth(
        product_id=product_id,
        strategy=meta.get("strategy", ""),
        stock_initial=int(meta.get("stock_initial", 0)),
        stock_remaining=int(stock or 0),
        buyers=sorted(buyers),
        orders=orders,
        read_at_ns=read_at_ns,
        redis_info={k: info[k] for k in INFO_FIELDS if k in info},
    )


def drop_product(redis_url: str, product_id: str, timeout_s: float = 10.0) -> int:
    """Delete every key of one product (`fl:{<product>}:*`): the capacity probe's scratch product
    leaves nothing behind. Returns how many keys were deleted."""
    client = redis.Redis.from_url(
        redis_url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s
    )
    pattern = ProductKeys(product_id).meta.removesuffix("meta") + "*"
    try:
        keys = list(client.scan_iter(match=pattern, count=1000))
        return int(client.delete(*keys)) if keys else 0
    finally:
        client.close()
