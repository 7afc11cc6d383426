"""The HTTP routes: each handler hands its request to the service and its answer back as a Response.

`install_routes` registers them in the OpenAPI order: the shop's (buy, the waiting room, a
product), then the operator's (health, readiness, metrics, reset). `POST /api/v1/shop/buy` is
normally answered by the fast lane (`edge`) before routing; its route here documents it and
answers when the lane is absent, through the same `answer_buy`.
"""

from __future__ import annotations

import hmac

import orjson
from fastapi import FastAPI
from fastapi import Path
from fastapi import Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from flashlab.core.contract import ADMIN_HEADER
from flashlab.core.contract import BUY_PATH
from flashlab.core.contract import ID_PATTERN
from flashlab.core.contract import PRODUCT_PATH
from flashlab.core.contract import QUEUE_PATH
from flashlab.core.contract import QUEUE_TICKET_PATH
from flashlab.core.contract import RESET_PATH
from flashlab.core.contract import USER_HEADER
from flashlab.core.contract import BuyOk
from flashlab.core.contract import BuyRequest
from flashlab.core.contract import ErrorCode
from flashlab.core.contract import Health
from flashlab.core.contract import Product
from flashlab.core.contract import QueueStatus
from flashlab.core.contract import ResetOk
from flashlab.core.contract import ResetRequest
from flashlab.system import metrics
from flashlab.system.api.buy import answer_buy
from flashlab.system.api.errors import REQUEST_ERRORS
from flashlab.system.api.errors import BadInput
from flashlab.system.api.openapi import body_and_header
from flashlab.system.api.openapi import error_answers
from flashlab.system.api.openapi import reset_body
from flashlab.system.api.openapi import shopper_errors
from flashlab.system.api.parsing import check_user
from flashlab.system.api.parsing import client_ip
from flashlab.system.api.parsing import parse_buy
from flashlab.system.api.parsing import parse_reset
from flashlab.system.api.parsing import read_body
from flashlab.system.api.replies import JSON
from flashlab.system.api.replies import error_reply
from flashlab.system.api.replies import error_response
from flashlab.system.api.replies import failure_reply
from flashlab.system.api.replies import json_response
from flashlab.system.api.replies import queue_reply
from flashlab.system.api.replies import to_response
from flashlab.system.api.service import ShopService
from flashlab.system.backend import begin_request
from flashlab.system.keys import ProductKeys


class ShopRoutes:
    """One worker's route handlers, bound to its service (FastAPI calls the bound methods).

    The handlers carry comments, not docstrings: FastAPI would publish a docstring as the
    route's OpenAPI description, and the contract's document has none.
    """

    def __init__(self, service: ShopService) -> None:
        self.service = service
        self.health = orjson.dumps({"status": "ok", "worker": service.settings.worker_id})

    async def buy(self, request: Request) -> Response:
        ip = client_ip(request.headers.get("x-forwarded-for"), request.client)
        user = request.headers.get(USER_HEADER)
        reply = await answer_buy(self.service, user, lambda: read_body(request), ip)
        return to_response(request.scope, reply)

    async def queue_join(self, request: Request) -> Response:
        begin_request()
        ip = client_ip(request.headers.get("x-forwarded-for"), request.client)
        try:
            user_id = check_user(request.headers.get(USER_HEADER))
            keys = ProductKeys(parse_buy(await read_body(request)))
        except BadInput as exc:
            return to_response(request.scope, error_reply(exc.code, exc.message))
        try:
            result = await self.service.queue_join(keys, user_id, ip)
        except REQUEST_ERRORS as exc:
            return to_response(request.scope, failure_reply(exc))
        return to_response(request.scope, queue_reply(keys.product_id, result))

    async def queue_status(
        self,
        request: Request,
        product_id: str = Path(pattern=ID_PATTERN),
        ticket: int = Path(ge=1, le=2**53),
    ) -> Response:
        begin_request()
        keys = ProductKeys(product_id)
        try:
            result = await self.service.queue_status(keys, ticket)
        except REQUEST_ERRORS as exc:
            return to_response(request.scope, failure_reply(exc))
        return to_response(request.scope, queue_reply(keys.product_id, result))

    async def product(
        self, request: Request, product_id: str = Path(pattern=ID_PATTERN)
    ) -> Response:
        product = await self.service.product(product_id)
        if product is None:
            return error_response(
                request.scope, ErrorCode.not_found, f"unknown product {product_id}"
            )
        return json_response(product.model_dump(mode="json", by_alias=True))

    async def healthz(self) -> Response:
        # Liveness only: never touches Redis, so a Redis outage does not get workers killed.
        return Response(self.health, media_type=JSON)

    async def readyz(self, request: Request) -> Response:
        if await self.service.ready():
            return json_response({"status": "ready", "worker": self.service.settings.worker_id})
        return error_response(
            request.scope, ErrorCode.backend_unavailable, "redis did not answer PING in time"
        )

    async def prometheus_metrics(self) -> Response:
        body, content_type = await run_in_threadpool(metrics.exposition)
        return Response(body, media_type=content_type)

    async def reset(self, request: Request) -> Response:
        token = self.service.settings.admin_token
        given = request.headers.get(ADMIN_HEADER, "")
        if not token or not hmac.compare_digest(given.encode(), token.encode()):
            return error_response(request.scope, ErrorCode.forbidden, f"{ADMIN_HEADER} is wrong")
        try:
            req, settings = parse_reset(await read_body(request))
        except BadInput as exc:
            return error_response(request.scope, exc.code, exc.message)
        await self.service.reset(req, settings.model_dump_json())
        ok = ResetOk(product_id=req.product_id, stock=req.stock, strategy=req.strategy)
        return json_response(ok.model_dump(mode="json", by_alias=True))


def install_routes(app: FastAPI, service: ShopService) -> None:
    """The shop's routes, then the operator's (health, metrics, reset): the OpenAPI order."""
    routes = ShopRoutes(service)
    _install_shop_routes(app, routes)
    _install_operator_routes(app, routes)


def _install_shop_routes(app: FastAPI, routes: ShopRoutes) -> None:
    user_schema = {"type": "string", "pattern": ID_PATTERN}
    product_errors = (ErrorCode.not_found, ErrorCode.validation_error)
    app.add_api_route(
        BUY_PATH,
        routes.buy,
        methods=["POST"],
        response_model=BuyOk,
        openapi_extra=body_and_header(BuyRequest, USER_HEADER, user_schema),
        responses=shopper_errors(ErrorCode.busy, ErrorCode.not_admitted),
    )
    # The waiting room of strategy `queue`: join/refresh (POST) and one ticket's state (GET).
    app.add_api_route(
        QUEUE_PATH,
        routes.queue_join,
        methods=["POST"],
        response_model=QueueStatus,
        openapi_extra=body_and_header(BuyRequest, USER_HEADER, user_schema),
        responses=shopper_errors(),
    )
    app.add_api_route(
        QUEUE_TICKET_PATH,
        routes.queue_status,
        methods=["GET"],
        response_model=QueueStatus,
        responses=error_answers(*product_errors, ErrorCode.backend_unavailable),
    )
    app.add_api_route(
        PRODUCT_PATH,
        routes.product,
        methods=["GET"],
        response_model=Product,
        responses=error_answers(*product_errors, ErrorCode.backend_unavailable),
    )


def _install_operator_routes(app: FastAPI, routes: ShopRoutes) -> None:
    app.add_api_route("/healthz", routes.healthz, methods=["GET"], response_model=Health)
    app.add_api_route(
        "/readyz",
        routes.readyz,
        methods=["GET"],
        response_model=Health,
        responses=error_answers(ErrorCode.backend_unavailable),
    )
    app.add_api_route(
        "/metrics", routes.prometheus_metrics, methods=["GET"], response_class=Response
    )
    app.add_api_route(
        RESET_PATH,
        routes.reset,
        methods=["POST"],
        response_model=ResetOk,
        openapi_extra=body_and_header(
            ResetRequest, ADMIN_HEADER, {"type": "string"}, body=reset_body()
        ),
        responses=error_answers(
            ErrorCode.forbidden,
            ErrorCode.bad_request,
            ErrorCode.validation_error,
            ErrorCode.backend_unavailable,
        ),
    )
