"""The flash-sale HTTP API (docs/CONTRACT.md): routes, error mapping, and the app factory.

Run by the supervisor as `uvicorn flashlab.system.app:create_app --factory ...`, configured from the
FLASHLAB_* environment (`flashlab.system.settings`). Performance notes, because the buy path is
benchmarked against /healthz through the same nginx:
- the buy route parses its own body with orjson and checks it by hand (same rules as
  `contract.BuyRequest`, which documents it in OpenAPI) instead of FastAPI body injection;
- answers are pre-serialized `Response`s, so FastAPI does no response-model work;
- metrics are recorded by one pure-ASGI middleware (no BaseHTTPMiddleware task overhead).
Every failure maps to an `ErrorBody` with a `code`; exception handlers make a 500 unreachable
for any input (a last-resort handler exists but is logged as a bug).
"""

from __future__ import annotations

import hmac
import logging
import re
import sys
import time
from collections.abc import AsyncIterator
from collections.abc import Awaitable
from collections.abc import Callable
from collections.abc import MutableMapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import orjson
from fastapi import FastAPI
from fastapi import Path
from fastapi import Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.responses import Response

from flashlab.core.contract import ADMIN_HEADER
from flashlab.core.contract import BUY_PATH
from flashlab.core.contract import ID_PATTERN
from flashlab.core.contract import MAX_BODY_BYTES
from flashlab.core.contract import PRODUCT_PATH
from flashlab.core.contract import QUEUE_PATH
from flashlab.core.contract import QUEUE_TICKET_PATH
from flashlab.core.contract import RESET_PATH
from flashlab.core.contract import STATUS_OF
from flashlab.core.contract import USER_HEADER
from flashlab.core.contract import BuyOk
from flashlab.core.contract import BuyRequest
from flashlab.core.contract import ErrorBody
from flashlab.core.contract import ErrorCode
from flashlab.core.contract import Health
from flashlab.core.contract import Product
from flashlab.core.contract import QueueState
from flashlab.core.contract import QueueStatus
from flashlab.core.contract import ResetOk
from flashlab.core.contract import ResetRequest
from flashlab.core.validation import first_error
from flashlab.system import metrics
from flashlab.system.backend import BACKEND_ERRORS
from flashlab.system.backend import Backend
from flashlab.system.backend import begin_request
from flashlab.system.backend import error_kind
from flashlab.system.backend import maybe_committed
from flashlab.system.keys import ProductKeys
from flashlab.system.ratelimit import RateLimiter
from flashlab.system.ratelimit import retry_after_s
from flashlab.system.settings import Settings
from flashlab.system.settings import SettingsError
from flashlab.system.strategies import Outcome
from flashlab.system.strategies import ProductMeta
from flashlab.system.strategies import Purchase
from flashlab.system.strategies import PurchaseStrategy
from flashlab.system.strategies import all_settings_model
from flashlab.system.strategies import load_strategies
from flashlab.system.strategies import settings_model

log = logging.getLogger("flashlab.api")

JSON = "application/json"
CODE_KEY = "flashlab.code"  # ASGI scope key: the answer's ErrorCode, read by the metrics middleware
RETRY_AFTER_S = "1"
META_TTL_S = 1.0  # how long a worker trusts a cached product meta (`rechecks_strategy` only)
_ID_RE = re.compile(ID_PATTERN)
_USER_HEADER_B = USER_HEADER.encode()
_CONFLICTS = {
    Outcome.busy: ErrorCode.busy,
    Outcome.already_purchased: ErrorCode.already_purchased,
    Outcome.sold_out: ErrorCode.sold_out,
    Outcome.not_admitted: ErrorCode.not_admitted,
    Outcome.admission_expired: ErrorCode.admission_expired,
}
# HTTP statuses raised by the framework itself (routing, method checks) -> our codes.
_HTTP_CODES = {
    400: ErrorCode.bad_request,
    401: ErrorCode.unauthenticated,
    403: ErrorCode.forbidden,
    404: ErrorCode.not_found,
    405: ErrorCode.method_not_allowed,
    422: ErrorCode.validation_error,
    503: ErrorCode.backend_unavailable,
}


class BadInput(Exception):
    """A request the contract rejects; carries the code and a one-line reason."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class RateLimited(Exception):
    """The product's token bucket for this user or IP is empty; `wait_ms` until a token is back."""

    def __init__(self, wait_ms: int) -> None:
        super().__init__(f"rate limited for {wait_ms} ms")
        self.wait_ms = wait_ms


# --------------------------------------------------------------------------- replies


@dataclass(frozen=True, slots=True)
class Reply:
    """The server's reply to one request, independent of how it is sent (FastAPI Response or
    raw ASGI). Not the shopper's `flashlab.simulator.client.Answer` (what a client received)."""

    status: int
    body: bytes
    code: str  # "ok" or an ErrorCode value (the metrics label)
    retry_after: bool = False
    retry_after_value: str = RETRY_AFTER_S

    def headers(self) -> dict[str, str] | None:
        return {"Retry-After": self.retry_after_value} if self.retry_after else None


def error_reply(
    code: ErrorCode, message: str, *, committed: bool | None = None, status: int | None = None
) -> Reply:
    body: dict[str, Any] = {"code": code.value, "message": message}
    if committed is not None:
        body["maybeCommitted"] = committed
    # 409 busy and 503 say "try again": both carry Retry-After.
    retry = code in (ErrorCode.busy, ErrorCode.backend_unavailable)
    return Reply(status or STATUS_OF[code], orjson.dumps(body), code.value, retry)


def rate_limited_reply(exc: RateLimited) -> Reply:
    body = {
        "code": ErrorCode.rate_limited.value,
        "message": "rate limited",
        "retryAfterMs": exc.wait_ms,
    }
    value = retry_after_s(exc.wait_ms)
    return Reply(429, orjson.dumps(body), ErrorCode.rate_limited.value, True, value)


def backend_reply(exc: BaseException) -> Reply:
    kind = error_kind(exc)
    metrics.redis_error(kind)
    message = f"redis unavailable ({kind})"
    return error_reply(ErrorCode.backend_unavailable, message, committed=maybe_committed())


# What a request can fail with before it has an outcome: each answers 4xx or 503, never 500.
REQUEST_ERRORS: tuple[type[BaseException], ...] = (BadInput, RateLimited, *BACKEND_ERRORS)


def failure_reply(exc: BaseException) -> Reply:
    """The reply to one of REQUEST_ERRORS: the contract's 4xx, 429 with Retry-After, or 503."""
    if isinstance(exc, BadInput):
        return error_reply(exc.code, exc.message)
    if isinstance(exc, RateLimited):
        return rate_limited_reply(exc)
    return backend_reply(exc)


def to_response(scope: MutableMapping[str, Any], reply: Reply) -> Response:
    scope[CODE_KEY] = reply.code
    return Response(reply.body, reply.status, headers=reply.headers(), media_type=JSON)


def error_response(
    scope: MutableMapping[str, Any],
    code: ErrorCode,
    message: str,
    *,
    headers: dict[str, str] | None = None,
    status: int | None = None,
) -> Response:
    response = to_response(scope, error_reply(code, message, status=status))
    if headers:
        response.headers.update(headers)
    return response


def json_response(data: dict[str, Any], status: int = 200) -> Response:
    return Response(orjson.dumps(data), status_code=status, media_type=JSON)


async def send_reply(send: Any, reply: Reply) -> None:
    """Raw ASGI send, for the buy fast lane."""
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", b"%d" % len(reply.body)),
    ]
    if reply.retry_after:
        headers.append((b"retry-after", reply.retry_after_value.encode()))
    await send({"type": "http.response.start", "status": reply.status, "headers": headers})
    await send({"type": "http.response.body", "body": reply.body})


# --------------------------------------------------------------------------- input


def _too_large() -> BadInput:
    return BadInput(ErrorCode.bad_request, f"body larger than {MAX_BODY_BYTES} bytes")


async def read_body(request: Request) -> bytes:
    """The request body, refusing (400) anything over MAX_BODY_BYTES without buffering it all."""
    declared = request.headers.get("content-length")
    if declared is not None and (
        not (declared.isascii() and declared.isdigit()) or int(declared) > MAX_BODY_BYTES
    ):
        raise _too_large()
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            raise _too_large()
    return body


async def receive_body(receive: Any, declared: bytes | None) -> bytes:
    """`read_body` for raw ASGI (the buy fast lane)."""
    if declared is not None and (not declared.isdigit() or int(declared) > MAX_BODY_BYTES):
        raise _too_large()
    body = b""
    more = True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise BadInput(ErrorCode.bad_request, "client disconnected")
        body += message.get("body", b"")
        more = message.get("more_body", False)
        if len(body) > MAX_BODY_BYTES:
            raise _too_large()
    return body


def parse_json(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        raise BadInput(ErrorCode.bad_request, "body is not valid JSON") from None


def parse_buy(body: bytes) -> str:
    """Same rules as contract.BuyRequest (extra=forbid, productId pattern), checked by hand for speed."""
    data = parse_json(body)
    if not isinstance(data, dict):
        raise BadInput(ErrorCode.validation_error, "body must be a JSON object")
    if len(data) != 1 or "productId" not in data:
        extra = sorted(k for k in data if k != "productId")
        reason = f"unknown field(s): {', '.join(extra)[:200]}" if extra else "productId is required"
        raise BadInput(ErrorCode.validation_error, reason)
    product_id = data["productId"]
    if not isinstance(product_id, str) or not _ID_RE.fullmatch(product_id):
        raise BadInput(ErrorCode.validation_error, f"productId must match {ID_PATTERN}")
    return product_id


def check_user(user: str | None) -> str:
    if not user or not _ID_RE.fullmatch(user):
        raise BadInput(ErrorCode.unauthenticated, f"{USER_HEADER} header must match {ID_PATTERN}")
    return user


# --------------------------------------------------------------------------- the API


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
        meta = ProductMeta.from_hash(await self.backend.redis.hgetall(keys.meta))
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

    async def buy(
        self, user_header: str | None, read: Callable[[], Awaitable[bytes]], ip: str = ""
    ) -> Reply:
        """The purchase endpoint's logic, shared by the fast lane and the FastAPI route."""
        begin_request()
        try:
            user_id = check_user(user_header)
            product_id = parse_buy(await read())
            strategy, result = await self.purchase(ProductKeys(product_id), user_id, ip)
        except REQUEST_ERRORS as exc:
            return failure_reply(exc)
        outcome = result.outcome
        if outcome is Outcome.ok:
            metrics.purchase(strategy)
            metrics.stock(product_id, result.remaining or 0)
            body = orjson.dumps({"orderId": result.order_id, "remaining": result.remaining})
            return Reply(200, body, "ok")
        if outcome is Outcome.not_found:
            return error_reply(ErrorCode.not_found, f"unknown product {product_id}")
        code = _CONFLICTS[outcome]
        metrics.conflict(code.value)
        return error_reply(code, code.value.replace("_", " "))

    async def queue_strategy(self, keys: ProductKeys) -> tuple[Any, ProductMeta]:
        """The `queue` strategy and the product's meta; 404 when the product has no waiting room."""
        meta = await self.cached_meta(keys)
        if meta is None or meta.strategy != "queue":
            raise BadInput(ErrorCode.not_found, f"product {keys.product_id} has no waiting room")
        return self.strategies["queue"], meta

    async def queue_call(
        self, keys: ProductKeys, call: Callable[[Any, ProductMeta], Awaitable[Any]]
    ) -> Reply:
        """Run a waiting-room script (re-reading meta once if a reset changed the strategy)."""
        try:
            result = None
            for _ in range(2):
                strategy, meta = await self.queue_strategy(keys)
                result = await call(strategy, meta)
                if not (isinstance(result, Purchase) and result.outcome is Outcome.stale):
                    break
                self._meta.pop(keys.product_id, None)
        except REQUEST_ERRORS as exc:
            return failure_reply(exc)
        return queue_reply(keys.product_id, result)

    async def queue_join(self, request: Request) -> Response:
        begin_request()
        ip = client_ip(request.headers.get("x-forwarded-for"), request.client)
        try:
            user_id = check_user(request.headers.get(USER_HEADER))
            keys = ProductKeys(parse_buy(await read_body(request)))
        except BadInput as exc:
            return to_response(request.scope, error_reply(exc.code, exc.message))

        async def join(strategy: Any, meta: ProductMeta) -> Any:
            await self.limit(keys, meta, user_id, ip)
            result = await strategy.join(keys, user_id, meta)
            # Joining a line that can no longer sell is "sold out", as on the buy path.
            sold_out = isinstance(result, QueueStatus) and result.state is QueueState.sold_out
            return Purchase(Outcome.sold_out) if sold_out else result

        return to_response(request.scope, await self.queue_call(keys, join))

    async def queue_status(self, request: Request, product_id: str, ticket: int) -> Response:
        begin_request()
        keys = ProductKeys(product_id)

        async def status(strategy: Any, meta: ProductMeta) -> Any:
            return await strategy.status(keys, ticket, meta)

        return to_response(request.scope, await self.queue_call(keys, status))

    async def product(self, request: Request, product_id: str) -> Response:
        keys = ProductKeys(product_id)
        async with self.backend.redis.pipeline(transaction=False) as pipe:
            pipe.hgetall(keys.meta).get(keys.stock).xlen(keys.orders)
            raw_meta, raw_stock, sold = await pipe.execute()
        meta = ProductMeta.from_hash(raw_meta)
        if meta is None:
            return error_response(
                request.scope, ErrorCode.not_found, f"unknown product {product_id}"
            )
        stock = int(raw_stock or 0)
        metrics.stock(product_id, stock)
        product = Product(
            product_id=product_id,
            stock=stock,
            stock_initial=meta.stock_initial,
            price_cents=meta.price_cents,
            strategy=meta.strategy,
            sold=int(sold),
        )
        return json_response(product.model_dump(mode="json", by_alias=True))

    async def reset(self, request: Request) -> Response:
        token = self.settings.admin_token
        given = request.headers.get(ADMIN_HEADER, "")
        if not token or not hmac.compare_digest(given.encode(), token.encode()):
            return error_response(request.scope, ErrorCode.forbidden, f"{ADMIN_HEADER} is wrong")
        try:
            req = ResetRequest.model_validate(parse_json(await read_body(request)))
            settings = _strategy_settings(req)
        except BadInput as exc:
            return error_response(request.scope, exc.code, exc.message)
        except ValidationError as exc:
            where = "" if exc.title == ResetRequest.__name__ else "settings."
            return error_response(
                request.scope, ErrorCode.validation_error, where + _first_error(exc)
            )
        await self._apply_reset(req, settings.model_dump_json())
        ok = ResetOk(product_id=req.product_id, stock=req.stock, strategy=req.strategy)
        return json_response(ok.model_dump(mode="json", by_alias=True))

    async def _apply_reset(self, req: ResetRequest, settings_json: str) -> None:
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
            pipe.set(keys.stock, req.stock).hset(keys.meta, mapping=meta.to_hash())
            await pipe.execute()
        self._meta.pop(req.product_id, None)
        metrics.stock(req.product_id, req.stock)

    async def ready(self, request: Request) -> Response:
        if await self.backend.ping():
            return json_response({"status": "ready", "worker": self.settings.worker_id})
        return error_response(
            request.scope, ErrorCode.backend_unavailable, "redis did not answer PING in time"
        )


def client_ip(forwarded: str | None, client: Any) -> str:
    """The caller's address: the last X-Forwarded-For hop (the one nginx appended), else the peer."""
    if forwarded:
        return forwarded.rsplit(",", 1)[-1].strip()[:64]
    return str(client[0]) if client else ""


def queue_reply(product_id: str, result: Any) -> Reply:
    if isinstance(result, QueueStatus):
        return Reply(200, orjson.dumps(result.model_dump(mode="json", by_alias=True)), "ok")
    if result is None or result.outcome in (Outcome.not_found, Outcome.stale):
        return error_reply(ErrorCode.not_found, f"unknown ticket or product {product_id}")
    return error_reply(ErrorCode.sold_out, "sold out")


def _strategy_settings(req: ResetRequest) -> BaseModel:
    """The chosen strategy's settings out of the reset's (every key checked, others' ignored)."""
    given = all_settings_model().model_validate(req.settings)
    own = settings_model(req.strategy.value)
    return own.model_validate(
        {k: getattr(given, k) for k in given.model_fields_set if k in own.model_fields}
    )


def _reset_body() -> dict[str, Any]:
    """The reset's OpenAPI body: ResetRequest, with `settings` typed by every strategy's fields."""
    body = _openapi_body(ResetRequest)
    schema = body["requestBody"]["content"][JSON]["schema"]
    settings = all_settings_model().model_json_schema(by_alias=True)
    schema["properties"]["settings"] = _inline_refs(settings, settings.get("$defs", {}))
    return body


def _first_error(exc: ValidationError) -> str:
    return first_error(exc, empty="body")[:300]


# --------------------------------------------------------------------------- edge middleware


class EdgeMiddleware:
    """Pure ASGI, outermost of ours: metrics for every answer, and the buy fast lane.

    Metrics: counts and times every HTTP answer by route template, status and code.
    Fast lane: `POST /api/v1/shop/buy` is answered here, skipping routing, FastAPI's
    dependency machinery and two middleware layers — about a third of the per-request CPU
    of a lua purchase. The FastAPI route for the same path (reached only if this lane is
    absent) runs the same `ShopService.buy` and documents the endpoint in OpenAPI.
    """

    def __init__(self, app: Callable[..., Awaitable[None]], api: ShopService) -> None:
        self.app = app
        self.api = api

    async def __call__(self, scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        if scope["path"] == BUY_PATH and scope["method"] == "POST":
            reply = await self._buy(scope, receive)
            try:
                await send_reply(send, reply)
            finally:
                metrics.observe_request(
                    BUY_PATH, reply.status, reply.code, time.perf_counter() - start
                )
            return
        status = 500

        async def send_status(message: MutableMapping[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = scope.get("route")
            # Route templates only: raw paths (fuzzers, scanners) would explode label cardinality.
            label = getattr(route, "path", "unmatched")
            code = scope.get(CODE_KEY) or ("ok" if status < 400 else str(status))
            metrics.observe_request(label, status, code, time.perf_counter() - start)

    def _buy(self, scope: MutableMapping[str, Any], receive: Any) -> Awaitable[Reply]:
        user: str | None = None
        declared: bytes | None = None
        forwarded: str | None = None
        for name, value in scope["headers"]:
            if name == _USER_HEADER_B and user is None:
                user = value.decode("latin-1")
            elif name == b"content-length":
                declared = value
            elif name == b"x-forwarded-for":
                forwarded = value.decode("latin-1")
        ip = client_ip(forwarded, scope.get("client"))
        return self.api.buy(user, lambda: receive_body(receive, declared), ip)


# --------------------------------------------------------------------------- wiring


def _inline_refs(node: Any, defs: dict[str, Any]) -> Any:
    """Replace pydantic's local `#/$defs/X` refs by their definitions (they do not resolve
    inside an OpenAPI document, so schema-driven clients and fuzzers could not use them)."""
    if isinstance(node, dict):
        ref = node.get("$ref", "")
        if ref.startswith("#/$defs/"):
            rest = {k: v for k, v in node.items() if k != "$ref"}
            return {**_inline_refs(defs[ref.removeprefix("#/$defs/")], defs), **rest}
        return {k: _inline_refs(v, defs) for k, v in node.items() if k != "$defs"}
    if isinstance(node, list):
        return [_inline_refs(v, defs) for v in node]
    return node


def _openapi_body(model: type[Any]) -> dict[str, Any]:
    schema = model.model_json_schema(by_alias=True)
    schema = _inline_refs(schema, schema.get("$defs", {}))
    return {"requestBody": {"required": True, "content": {JSON: {"schema": schema}}}}


def _errors(*codes: ErrorCode) -> dict[int | str, dict[str, Any]]:
    return {STATUS_OF[c]: {"model": ErrorBody, "description": c.value} for c in codes}


def _install_handlers(app: FastAPI) -> None:
    async def on_bad_input(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, BadInput)
        return error_response(request.scope, exc.code, exc.message)

    async def on_validation(request: Request, exc: Exception) -> Response:
        errors = exc.errors() if isinstance(exc, RequestValidationError) else []
        first = errors[0] if errors else {}
        where = ".".join(str(p) for p in first.get("loc", ())) or "request"
        message = f"{where}: {first.get('msg', 'invalid')}"[:300]
        return error_response(request.scope, ErrorCode.validation_error, message)

    async def on_http(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        code = _HTTP_CODES.get(exc.status_code, ErrorCode.bad_request)
        status = exc.status_code if exc.status_code in _HTTP_CODES else STATUS_OF[code]
        return error_response(
            request.scope, code, str(exc.detail)[:300], headers=exc.headers, status=status
        )

    async def on_backend(request: Request, exc: Exception) -> Response:
        return to_response(request.scope, backend_reply(exc))

    async def on_disconnect(request: Request, exc: Exception) -> Response:
        return error_response(request.scope, ErrorCode.bad_request, "client disconnected")

    async def on_anything(request: Request, exc: Exception) -> Response:
        # Last resort: reaching this is a bug (the fuzz test asserts it never happens).
        log.error("unhandled %s on %s", type(exc).__name__, request.url.path, exc_info=exc)
        body = orjson.dumps({"code": "internal", "message": "internal error"})
        return Response(body, status_code=500, media_type=JSON)

    app.add_exception_handler(BadInput, on_bad_input)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(ClientDisconnect, on_disconnect)
    for exc_type in BACKEND_ERRORS:
        app.add_exception_handler(exc_type, on_backend)
    app.add_exception_handler(Exception, on_anything)


def _install_routes(app: FastAPI, api: ShopService) -> None:
    """The shop's routes, then the operator's (health, metrics, reset): the OpenAPI order."""
    _install_shop_routes(app, api)
    _install_operator_routes(app, api)


def _body_and_header(
    model: type[Any], header: str, schema: dict[str, Any], body: dict[str, Any] | None = None
) -> dict[str, Any]:
    """OpenAPI extra of a POST route: its JSON body (the model's, unless given) and its header."""
    param = {"name": header, "in": "header", "required": True, "schema": schema}
    return {**(body or _openapi_body(model)), "parameters": [param]}


def _shopper_errors(*conflicts: ErrorCode) -> dict[int | str, dict[str, Any]]:
    """The answers a shopper's POST (buy, queue join) documents; `conflicts` are its own 409s."""
    return _errors(
        ErrorCode.unauthenticated,
        ErrorCode.bad_request,
        ErrorCode.validation_error,
        ErrorCode.not_found,
        *conflicts,
        ErrorCode.sold_out,
        ErrorCode.rate_limited,
        ErrorCode.backend_unavailable,
    )


def _install_shop_routes(app: FastAPI, api: ShopService) -> None:
    user_schema = {"type": "string", "pattern": ID_PATTERN}

    @app.post(
        BUY_PATH,
        response_model=BuyOk,
        openapi_extra=_body_and_header(BuyRequest, USER_HEADER, user_schema),
        responses=_shopper_errors(ErrorCode.busy, ErrorCode.not_admitted),
    )
    async def buy(request: Request) -> Response:
        ip = client_ip(request.headers.get("x-forwarded-for"), request.client)
        reply = await api.buy(request.headers.get(USER_HEADER), lambda: read_body(request), ip)
        return to_response(request.scope, reply)

    _install_queue_routes(app, api, user_schema)

    @app.get(
        PRODUCT_PATH,
        response_model=Product,
        responses=_errors(
            ErrorCode.not_found, ErrorCode.validation_error, ErrorCode.backend_unavailable
        ),
    )
    async def product(request: Request, product_id: str = Path(pattern=ID_PATTERN)) -> Response:
        return await api.product(request, product_id)


def _install_queue_routes(app: FastAPI, api: ShopService, user_schema: dict[str, Any]) -> None:
    """The waiting room of strategy `queue`: join/refresh (POST) and one ticket's state (GET)."""

    @app.post(
        QUEUE_PATH,
        response_model=QueueStatus,
        openapi_extra=_body_and_header(BuyRequest, USER_HEADER, user_schema),
        responses=_shopper_errors(),
    )
    async def queue_join(request: Request) -> Response:
        return await api.queue_join(request)

    @app.get(
        QUEUE_TICKET_PATH,
        response_model=QueueStatus,
        responses=_errors(
            ErrorCode.not_found, ErrorCode.validation_error, ErrorCode.backend_unavailable
        ),
    )
    async def queue_status(
        request: Request,
        product_id: str = Path(pattern=ID_PATTERN),
        ticket: int = Path(ge=1, le=2**53),
    ) -> Response:
        return await api.queue_status(request, product_id, ticket)


def _install_operator_routes(app: FastAPI, api: ShopService) -> None:
    health = orjson.dumps({"status": "ok", "worker": api.settings.worker_id})

    @app.get("/healthz", response_model=Health)
    async def healthz() -> Response:
        # Liveness only: never touches Redis, so a Redis outage does not get workers killed.
        return Response(health, media_type=JSON)

    @app.get("/readyz", response_model=Health, responses=_errors(ErrorCode.backend_unavailable))
    async def readyz(request: Request) -> Response:
        return await api.ready(request)

    @app.get("/metrics", response_class=Response)
    async def prometheus_metrics() -> Response:
        body, content_type = await run_in_threadpool(metrics.exposition)
        return Response(body, media_type=content_type)

    @app.post(
        RESET_PATH,
        response_model=ResetOk,
        openapi_extra=_body_and_header(
            ResetRequest, ADMIN_HEADER, {"type": "string"}, body=_reset_body()
        ),
        responses=_errors(
            ErrorCode.forbidden,
            ErrorCode.bad_request,
            ErrorCode.validation_error,
            ErrorCode.backend_unavailable,
        ),
    )
    async def reset(request: Request) -> Response:
        return await api.reset(request)


def create_app(settings: Settings | None = None) -> FastAPI:
    """The ASGI app for one worker. Bad FLASHLAB_* environment -> one line on stderr, exit 2."""
    if settings is None:
        try:
            settings = Settings.from_env()
        except SettingsError as exc:
            print(f"error: {exc}", file=sys.stderr)
            raise SystemExit(2) from None
    api = ShopService(settings)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        await api.backend.close()

    app = FastAPI(
        title="flashlab flash-sale API",
        version="1",
        lifespan=lifespan,
        # FastAPI's native OpenTelemetry hooks cost a provider lookup per request; we export
        # Prometheus metrics instead.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.api = api
    _install_handlers(app)
    _install_routes(app, api)
    app.add_middleware(EdgeMiddleware, api=api)
    return app
