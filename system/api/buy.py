"""The purchase endpoint without a framework: user header, body and address in, its `Reply` out.

One function for both ways in: the ASGI fast lane (`edge`) and the FastAPI route (`routes`,
which documents the endpoint in OpenAPI and answers when the fast lane is absent).
"""

from __future__ import annotations

from collections.abc import Awaitable
from collections.abc import Callable

import orjson

from flashlab.core.contract import ErrorCode
from flashlab.system import metrics
from flashlab.system.api.errors import REQUEST_ERRORS
from flashlab.system.api.parsing import check_user
from flashlab.system.api.parsing import parse_buy
from flashlab.system.api.replies import Reply
from flashlab.system.api.replies import error_reply
from flashlab.system.api.replies import failure_reply
from flashlab.system.api.service import ShopService
from flashlab.system.backend import begin_request
from flashlab.system.keys import ProductKeys
from flashlab.system.strategies import Outcome

_CONFLICTS = {
    Outcome.busy: ErrorCode.busy,
    Outcome.already_purchased: ErrorCode.already_purchased,
    Outcome.sold_out: ErrorCode.sold_out,
    Outcome.not_admitted: ErrorCode.not_admitted,
    Outcome.admission_expired: ErrorCode.admission_expired,
}


async def answer_buy(
    service: ShopService,
    user_header: str | None,
    read: Callable[[], Awaitable[bytes]],
    ip: str = "",
) -> Reply:
    """Check the shopper and the body, buy through the service, count it, and answer."""
    begin_request()
    try:
        user_id = check_user(user_header)
        product_id = parse_buy(await read())
        strategy, result = await service.purchase(ProductKeys(product_id), user_id, ip)
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
