"""What a target really did: its stock and its orders, read from its own Redis, SQL database or HTTP API.

The result is the run directory's `Truth` (flashlab.core.rundir), whose `fields` say what was
read: a target whose file reads no stock leaves `stock_remaining` None, one that reads only the
buyers gives orders with a user and no id, a SQL query gives the columns it selects
(`order_id`, `user_id`, `ts_ms`). The checks that need a missing field are n/a, not passed.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import orjson

from flashlab.core.placeholders import render
from flashlab.core.rundir import Truth
from flashlab.core.rundir import TruthOrder
from flashlab.core.target import HttpTruth
from flashlab.core.target import OrderPaths
from flashlab.core.target import RedisTruth
from flashlab.core.target import SqlTruth
from flashlab.core.target import TargetSpec
from flashlab.core.target import compile_path
from flashlab.system.targets.reset import sale_values
from flashlab.system.targets.stores import TargetQueryError
from flashlab.system.targets.stores import http_json
from flashlab.system.targets.stores import redis_client
from flashlab.system.targets.stores import redis_command
from flashlab.system.targets.stores import sql_connection
from flashlab.system.targets.stores import sql_statement
from flashlab.system.targets.stores import text

ORDER_COLUMNS = ("order_id", "user_id", "ts_ms")


class _Read:
    """What one truth source returned."""

    def __init__(self) -> None:
        self.stock: int | None = None
        self.buyers: list[str] = []
        self.orders: list[TruthOrder] | None = None
        self.order_fields: list[str] = []
        self.notes: dict[str, Any] = {}


def read_target_truth(
    spec: TargetSpec,
    values: Mapping[str, Any],
    base_url: str,
    product: str,
    stock_initial: int,
) -> Truth:
    """The target's final state for `product`; TargetQueryError / TargetStoreError naming the key."""
    v = sale_values(values, product, stock_initial)
    read = _Read()
    truth = spec.truth
    source = "none"
    if truth is not None:
        source = truth.source
        if truth.redis is not None:
            _read_redis(truth.redis, v, read)
        elif truth.sql is not None:
            _read_sql(truth.sql, v, read)
        elif truth.http is not None:
            _read_http(truth.http, v, base_url, read)
    if read.orders is None and read.buyers:
        read.orders = [TruthOrder(user_id=b) for b in read.buyers]
        read.order_fields = ["user_id"]
    fields = (["stock"] if read.stock is not None else []) + (
        ["orders", *read.order_fields] if read.orders is not None else []
    )
    return Truth(
        product_id=product,
        strategy=spec.name,
        stock_initial=stock_initial,
        stock_remaining=read.stock,
        buyers=read.buyers,
        orders=read.orders or [],
        read_at_ns=time.time_ns(),
        redis_info=read.notes,
        source=source,
        fields=fields,
    )


# --- Redis -------------------------------------------------------------------------------------


def _read_redis(spec: RedisTruth, v: Mapping[str, Any], read: _Read) -> None:
    url = render(spec.url, v)
    with redis_client(url, "truth.redis") as client:
        if spec.stock:
            raw = redis_command(client, spec.stock, v)
            # A missing key is a store that forgot the product (e.g. restarted empty): 0 left.
            read.stock = 0 if raw is None else _integer(text(raw), "truth.redis.stock")
            if raw is None:
                read.notes["stock_key_missing"] = True
        if spec.buyers:
            read.buyers = sorted(text(b) for b in _items(redis_command(client, spec.buyers, v)))
        if spec.orders:
            items = _items(redis_command(client, spec.orders.command, v))
            read.orders = [_order(text(i), spec.orders, "truth.redis.orders") for i in items]
            read.order_fields = spec.orders.fields()


def _items(raw: Any) -> list[Any]:
    if raw is None:
        return []
    if isinstance(raw, list | set | tuple):
        return list(raw)
    if isinstance(raw, dict):
        return list(raw.items())
    return [raw]


def _order(item: Any, paths: OrderPaths, where: str) -> TruthOrder:
    """One order from one item: a plain string is the order id; JSON is read by the paths."""
    if not (paths.order_id or paths.user or paths.ts_ms):
        return TruthOrder(order_id=text(item))
    data = item
    if isinstance(item, str):
        try:
            data = orjson.loads(item)
        except orjson.JSONDecodeError:
            raise TargetQueryError(
                f"{where}: item {item[:60]!r} is not JSON, but paths are given"
            ) from None
    got = {
        name: _first(path, data)
        for name, path in (
            ("order_id", paths.order_id),
            ("user_id", paths.user),
            ("ts_ms", paths.ts_ms),
        )
        if path
    }
    return TruthOrder(
        order_id=None if got.get("order_id") is None else str(got["order_id"]),
        user_id=None if got.get("user_id") is None else str(got["user_id"]),
        ts_ms=_millis(got.get("ts_ms")),
    )


def _first(path: str, data: Any) -> Any:
    found = compile_path(path).find(data)
    return found[0].value if found else None


# --- SQL ---------------------------------------------------------------------------------------


def _read_sql(spec: SqlTruth, v: Mapping[str, Any], read: _Read) -> None:
    url = render(spec.url, v)
    with sql_connection(url, "truth.sql") as conn:
        if spec.stock:
            row = conn.execute(*sql_statement(spec.stock, v)).first()
            # No row: the store has no such product (any more): 0 left, and the note says why.
            read.stock = 0 if row is None else _integer(row[0], "truth.sql.stock")
            if row is None:
                read.notes["stock_row_missing"] = True
        if spec.orders:
            result = conn.execute(*sql_statement(spec.orders, v))
            selected = list(result.keys())
            columns = [c for c in ORDER_COLUMNS if c in selected]
            if not columns:
                raise TargetQueryError(
                    f"truth.sql.orders: select at least one of {', '.join(ORDER_COLUMNS)} "
                    f"(got columns {', '.join(selected)})"
                )
            read.orders = [_sql_order(row._mapping, columns) for row in result]
            read.order_fields = columns


def _sql_order(row: Mapping[str, Any], columns: list[str]) -> TruthOrder:
    return TruthOrder(
        order_id=None if row.get("order_id") is None else str(row["order_id"]),
        user_id=None if row.get("user_id") is None else str(row["user_id"]),
        ts_ms=_millis(row.get("ts_ms")) if "ts_ms" in columns else None,
    )


# --- HTTP --------------------------------------------------------------------------------------


def _read_http(spec: HttpTruth, v: Mapping[str, Any], base_url: str, read: _Read) -> None:
    def get(path: str, where: str) -> Any:
        status, data = http_json(base_url, "GET", path, v, where)
        if status != 200 or data is None:
            raise TargetQueryError(f"{where}: GET {path} answered {status} without JSON")
        return data

    if spec.stock:
        value = _first(spec.stock.value, get(spec.stock.path, "truth.http.stock"))
        read.stock = _integer(value, "truth.http.stock")
    if spec.buyers:
        data = get(spec.buyers.path, "truth.http.buyers")
        read.buyers = sorted(str(m.value) for m in compile_path(spec.buyers.value).find(data))
    if spec.orders:
        data = get(spec.orders.path, "truth.http.orders")
        items = [m.value for m in compile_path(spec.orders.items).find(data)]
        read.orders = [_order(i, spec.orders, "truth.http.orders") for i in items]
        read.order_fields = spec.orders.fields()


# --- values ------------------------------------------------------------------------------------


def _integer(value: Any, where: str) -> int:
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        raise TargetQueryError(f"{where}: expected an integer, got {str(value)[:40]!r}") from None


def _millis(value: Any) -> int | None:
    """Order time as epoch ms: an int (ms, or s when it is small), or a datetime."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return int(value.timestamp() * 1000)
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return int(number * 1000) if number < 1e11 else int(number)
