"""The exception handlers: whatever FastAPI or a route raises is answered as the contract's ErrorBody.

Bad input, request validation, the framework's own HTTP errors (routing, methods), Redis
failures and client disconnects each map to their ErrorCode; a last-resort handler answers
500 and logs it as a bug (the fuzz test asserts it is never reached).
"""

from __future__ import annotations

import logging

import orjson
from fastapi import FastAPI
from fastapi import Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.responses import Response

from flashlab.core.contract import STATUS_OF
from flashlab.core.contract import ErrorCode
from flashlab.system.api.errors import BadInput
from flashlab.system.api.replies import JSON
from flashlab.system.api.replies import backend_reply
from flashlab.system.api.replies import error_response
from flashlab.system.api.replies import to_response
from flashlab.system.backend import BACKEND_ERRORS

log = logging.getLogger("flashlab.api")

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


def install_exception_handlers(app: FastAPI) -> None:
    app.add_exception_handler(BadInput, on_bad_input)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(ClientDisconnect, on_disconnect)
    for exc_type in BACKEND_ERRORS:
        app.add_exception_handler(exc_type, on_backend)
    app.add_exception_handler(Exception, on_anything)
