"""The ASGI fast lane, outermost of ours: metrics for every answer, and the buy answered without FastAPI.

Metrics: counts and times every HTTP answer by route template, status and code.
Fast lane: `POST /api/v1/shop/buy` is answered here, skipping routing, FastAPI's dependency
machinery and two middleware layers: about a third of the per-request CPU of a lua purchase.
The FastAPI route for the same path (reached only if this lane is absent) runs the same
`answer_buy` and documents the endpoint in OpenAPI.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable
from collections.abc import Callable
from collections.abc import MutableMapping
from typing import Any

from flashlab.core.contract import BUY_PATH
from flashlab.core.contract import USER_HEADER
from flashlab.system import metrics
from flashlab.system.api.buy import answer_buy
from flashlab.system.api.parsing import client_ip
from flashlab.system.api.parsing import receive_body
from flashlab.system.api.replies import CODE_KEY
from flashlab.system.api.replies import Reply
from flashlab.system.api.replies import send_reply
from flashlab.system.api.service import ShopService

_USER_HEADER_B = USER_HEADER.encode()


class EdgeMiddleware:
    """Pure ASGI middleware: the metrics of every HTTP answer, and the buy fast lane."""

    def __init__(self, app: Callable[..., Awaitable[None]], service: ShopService) -> None:
        self.app = app
        self.service = service

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
        return answer_buy(self.service, user, lambda: receive_body(receive, declared), ip)
