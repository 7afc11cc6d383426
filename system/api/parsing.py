"""Reading a request: the body within its size limit, JSON, the buy and reset bodies, user, address."""

from __future__ import annotations

import re
from typing import Any

import orjson
from pydantic import BaseModel
from pydantic import ValidationError
from starlette.requests import Request

from flashlab.core.contract import ID_PATTERN
from flashlab.core.contract import MAX_BODY_BYTES
from flashlab.core.contract import USER_HEADER
from flashlab.core.contract import ErrorCode
from flashlab.core.contract import ResetRequest
from flashlab.core.validation import first_error
from flashlab.system.api.errors import BadInput
from flashlab.system.strategies import all_settings_model
from flashlab.system.strategies import settings_model

_ID_RE = re.compile(ID_PATTERN)


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


def parse_reset(body: bytes) -> tuple[ResetRequest, BaseModel]:
    """The reset and the chosen strategy's settings; BadInput naming the first bad field (a
    setting's under `settings.`)."""
    try:
        req = ResetRequest.model_validate(parse_json(body))
        return req, _strategy_settings(req)
    except ValidationError as exc:
        where = "" if exc.title == ResetRequest.__name__ else "settings."
        message = where + first_error(exc, empty="body")[:300]
        raise BadInput(ErrorCode.validation_error, message) from None


def _strategy_settings(req: ResetRequest) -> BaseModel:
    """The chosen strategy's settings out of the reset's (every key checked, others' ignored)."""
    given = all_settings_model().model_validate(req.settings)
    own = settings_model(req.strategy.value)
    return own.model_validate(
        {k: getattr(given, k) for k in given.model_fields_set if k in own.model_fields}
    )


def check_user(user: str | None) -> str:
    if not user or not _ID_RE.fullmatch(user):
        raise BadInput(ErrorCode.unauthenticated, f"{USER_HEADER} header must match {ID_PATTERN}")
    return user


def client_ip(forwarded: str | None, client: Any) -> str:
    """The caller's address: the last X-Forwarded-For hop (the one nginx appended), else the peer."""
    if forwarded:
        return forwarded.rsplit(",", 1)[-1].strip()[:64]
    return str(client[0]) if client else ""
