"""Talking to a target's own stores: Redis commands, SQL statements and HTTP calls, rendered from its file.

The reset (flashlab.system.targets.reset) and the truth (flashlab.system.targets.truth) go
through these few functions, so both report a failing store the same way:
`TargetStoreError` when the store is unreachable (infrastructure, exit 4) and
`TargetQueryError` when it answered but the file's command or query is wrong (bad input, exit 2),
each one line naming the key.
"""

from __future__ import annotations

import shlex
import string
from collections.abc import Iterator
from collections.abc import Mapping
from contextlib import contextmanager
from typing import Any

import httpx
import orjson
import redis

from flashlab.core.errors import UserError
from flashlab.core.extras import require
from flashlab.core.placeholders import render
from flashlab.core.placeholders import render_value
from flashlab.core.platform import ComponentNotRunning

BOUND = frozenset({"product", "stock"})  # bound as SQL parameters, never pasted into the text
TIMEOUT_S = 10.0


class TargetQueryError(UserError):
    """The store answered, but the target file's command or query is wrong (exit 2)."""


class TargetStoreError(ComponentNotRunning):
    """The target's store could not be reached (exit 4)."""


# --- Redis -------------------------------------------------------------------------------------


@contextmanager
def redis_client(url: str, where: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(url, socket_timeout=TIMEOUT_S, socket_connect_timeout=TIMEOUT_S)
    try:
        yield client
    except redis.ResponseError as exc:
        raise TargetQueryError(f"{where}: Redis refused it ({exc})") from None
    except redis.RedisError as exc:
        raise TargetStoreError(f"{where}: Redis at {url} unreachable ({exc})") from None
    finally:
        client.close()


def redis_command(client: redis.Redis, command: str, values: Mapping[str, Any]) -> Any:
    """One command: split like a shell line first, then each word rendered (a value can never
    add words)."""
    words = [render(word, values) for word in shlex.split(command)]
    return client.execute_command(*words)


def text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


# --- SQL ---------------------------------------------------------------------------------------


def sql_url(url: str) -> str:
    """A SQLAlchemy URL; `postgresql://` (no driver named) uses psycopg, which flashlab ships."""
    if url.startswith(("postgresql://", "postgres://")):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


@contextmanager
def sql_connection(url: str, where: str) -> Iterator[Any]:
    """A transaction on `url` (committed when the block ends without error)."""
    require("sql", "a target with sql: in its reset or truth")
    # start-up cost: only this path pays for sqlalchemy (an optional extra)
    import sqlalchemy
    from sqlalchemy import exc as sa_exc

    args = {"connect_timeout": int(TIMEOUT_S)} if url.startswith("postgres") else {}
    try:
        engine = sqlalchemy.create_engine(sql_url(url), connect_args=args, poolclass=None)
    except (sa_exc.ArgumentError, sa_exc.NoSuchModuleError, ValueError) as exc:
        raise TargetQueryError(f"{where}: bad SQL url {url!r} ({exc})") from None
    try:
        with engine.begin() as conn:
            yield conn
    except sa_exc.OperationalError as exc:
        if _connection_failed(exc):
            raise TargetStoreError(f"{where}: database unreachable ({_first_line(exc)})") from None
        raise TargetQueryError(f"{where}: {_first_line(exc)}") from None
    except sa_exc.DBAPIError as exc:
        raise TargetQueryError(f"{where}: {_first_line(exc)}") from None
    finally:
        engine.dispose()


def _connection_failed(exc: Exception) -> bool:
    text = str(exc).lower()
    return any(w in text for w in ("connection", "connect", "could not", "timeout", "refused"))


def _first_line(exc: Exception) -> str:
    orig = getattr(exc, "orig", None) or exc
    return (str(orig).strip().splitlines() or [type(orig).__name__])[0]


def sql_statement(statement: str, values: Mapping[str, Any]) -> tuple[Any, dict[str, Any]]:
    """A statement with `{product}`/`{stock}` as bound parameters (`:product`), every other
    placeholder rendered into the text; (sqlalchemy.text, params)."""
    # start-up cost: only this path pays for sqlalchemy (an optional extra)
    from sqlalchemy import text as sql_text

    parts: list[str] = []
    params: dict[str, Any] = {}
    for literal, name, _spec, _conv in string.Formatter().parse(statement):
        parts.append(literal)
        if name is None:
            continue
        if name in BOUND:
            parts.append(f":{name}")
            params[name] = values[name]
        else:
            parts.append(str(values[name]))
    return sql_text("".join(parts)), params


# --- HTTP --------------------------------------------------------------------------------------


def http_json(
    base_url: str, method: str, path: str, values: Mapping[str, Any], where: str, **kw: Any
) -> tuple[int, Any]:
    """(status, parsed JSON or None) of one call on the target."""
    url = base_url.rstrip("/") + "/" + render(path, values).lstrip("/")
    if "json" in kw and kw["json"] is not None:
        kw["content"] = orjson.dumps(render_value(kw.pop("json"), values))
        kw.setdefault("headers", {})["content-type"] = "application/json"
    kw.pop("json", None)
    try:
        resp = httpx.request(method, url, timeout=TIMEOUT_S, **kw)
    except httpx.HTTPError as exc:
        raise TargetStoreError(f"{where}: {method} {url} failed ({exc})") from None
    try:
        data = orjson.loads(resp.content) if resp.content else None
    except orjson.JSONDecodeError:
        data = None
    return resp.status_code, data
