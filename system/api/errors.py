"""The request failures the API answers with a 4xx, 429 or 503 (REQUEST_ERRORS), never a 500."""

from __future__ import annotations

from flashlab.core.contract import ErrorCode
from flashlab.system.backend import BACKEND_ERRORS


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


# What a request can fail with before it has an outcome: each answers 4xx or 503, never 500.
REQUEST_ERRORS: tuple[type[BaseException], ...] = (BadInput, RateLimited, *BACKEND_ERRORS)
