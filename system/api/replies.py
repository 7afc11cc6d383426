"""What the API answers: the `Reply` type, the error replies, and sending one (FastAPI or raw ASGI)."""

from __future__ import annotations

from collections.abc import Mapping
from collections.abc import MutableMapping
from dataclasses import dataclass
from typing import Any

import orjson
from starlette.responses import Response

from flashlab.core.contract import STATUS_OF
from flashlab.core.contract import ErrorCode
from flashlab.core.contract import QueueStatus
from flashlab.system import metrics
from flashlab.system.api.errors import BadInput
from flashlab.system.api.errors import RateLimited
from flashlab.system.backend import error_kind
from flashlab.system.backend import maybe_committed
from flashlab.system.ratelimit import retry_after_s
from flashlab.system.strategies import Outcome

JSON = "application/json"
CODE_KEY = "flashlab.code"  # ASGI scope key: the answer's ErrorCode, read by the metrics middleware
RETRY_AFTER_S = "1"


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


def failure_reply(exc: BaseException) -> Reply:
    """The reply to one of REQUEST_ERRORS: the contract's 4xx, 429 with Retry-After, or 503."""
    if isinstance(exc, BadInput):
        return error_reply(exc.code, exc.message)
    if isinstance(exc, RateLimited):
        return rate_limited_reply(exc)
    return backend_reply(exc)


def queue_reply(product_id: str, result: Any) -> Reply:
    """The reply to a waiting-room call: its QueueStatus, 404, or 409 sold out."""
    if isinstance(result, QueueStatus):
        return Reply(200, orjson.dumps(result.model_dump(mode="json", by_alias=True)), "ok")
    if result is None or result.outcome in (Outcome.not_found, Outcome.stale):
        return error_reply(ErrorCode.not_found, f"unknown ticket or product {product_id}")
    return error_reply(ErrorCode.sold_out, "sold out")


def to_response(scope: MutableMapping[str, Any], reply: Reply) -> Response:
    scope[CODE_KEY] = reply.code
    return Response(reply.body, reply.status, headers=reply.headers(), media_type=JSON)


def error_response(
    scope: MutableMapping[str, Any],
    code: ErrorCode,
    message: str,
    *,
    headers: Mapping[str, str] | None = None,
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
