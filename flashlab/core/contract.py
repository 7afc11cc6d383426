"""The HTTP contract of the flash-sale API: request/response models and machine-readable error codes.

The contract table of docs/CONTRACT.md lives here as types. The API (`flashlab.system.api`) answers with these models,
the simulator parses them, and the analysis keys on `ErrorCode`, never on HTTP status alone.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel
from pydantic import ConfigDict
from pydantic import Field
from pydantic import field_validator

API_PREFIX = "/api/v1"
BUY_PATH = f"{API_PREFIX}/shop/buy"
PRODUCT_PATH = f"{API_PREFIX}/products/{{product_id}}"
# The waiting room (strategy `queue`): POST joins (or refreshes) the caller's ticket, GET reads
# one ticket's state. Both answer a `QueueStatus`.
QUEUE_PATH = f"{API_PREFIX}/shop/queue"
QUEUE_TICKET_PATH = f"{QUEUE_PATH}/{{product_id}}/{{ticket}}"
RESET_PATH = "/admin/reset"
USER_HEADER = "x-user-id"
ADMIN_HEADER = "x-admin-token"

# Bounds on user input: anything larger is rejected with 4xx before touching Redis.
MAX_ID_LEN = 64
MAX_BODY_BYTES = 4096
ID_PATTERN = r"^[A-Za-z0-9_.:\-]{1,64}$"


class ErrorCode(StrEnum):
    """Every non-200 answer carries one of these in its body's `code`."""

    unauthenticated = "unauthenticated"  # 401: missing/empty x-user-id
    bad_request = "bad_request"  # 400: malformed JSON, oversized body
    validation_error = "validation_error"  # 422: well-formed JSON that breaks the schema
    not_found = "not_found"  # 404: unknown product or route
    busy = "busy"  # 409 + Retry-After: lost the race (lock held / retries exhausted)
    already_purchased = "already_purchased"  # 409: this user already holds a unit
    sold_out = "sold_out"  # 410
    backend_unavailable = "backend_unavailable"  # 503: Redis unreachable or timed out
    forbidden = "forbidden"  # 403: admin token wrong
    method_not_allowed = "method_not_allowed"  # 405
    not_admitted = "not_admitted"  # 409: queue product, the caller's ticket is not admitted (yet)
    admission_expired = "admission_expired"  # 410: queue product, the admission's time ran out
    rate_limited = (
        "rate_limited"  # 429 + Retry-After: the product's per-user/per-IP bucket is empty
    )
    # Written by nginx, not the API: no worker answered (502) or one answered too late (504).
    # The simulator records both as indeterminate: the request may have reached a worker.
    bad_gateway = "bad_gateway"
    gateway_timeout = "gateway_timeout"
    uri_too_long = "uri_too_long"  # 414, written by nginx: the request line exceeds its buffers


STATUS_OF: dict[ErrorCode, int] = {
    ErrorCode.unauthenticated: 401,
    ErrorCode.bad_request: 400,
    ErrorCode.validation_error: 422,
    ErrorCode.not_found: 404,
    ErrorCode.busy: 409,
    ErrorCode.already_purchased: 409,
    ErrorCode.sold_out: 410,
    ErrorCode.backend_unavailable: 503,
    ErrorCode.forbidden: 403,
    ErrorCode.method_not_allowed: 405,
    ErrorCode.not_admitted: 409,
    ErrorCode.admission_expired: 410,
    ErrorCode.rate_limited: 429,
    ErrorCode.bad_gateway: 502,
    ErrorCode.gateway_timeout: 504,
    ErrorCode.uri_too_long: 414,
}


class Strategy(StrEnum):
    naive = "naive"
    lock = "lock"
    optimistic = "optimistic"
    lua = "lua"
    queue = "queue"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class BuyRequest(_Strict):
    product_id: str = Field(alias="productId", pattern=ID_PATTERN)


class BuyOk(_Strict):
    order_id: str = Field(alias="orderId")
    remaining: int


class ErrorBody(_Strict):
    code: ErrorCode
    message: str = ""
    # 503 only: True when the failure happened after a write may have reached Redis
    # (e.g. a timeout waiting for EXEC's reply). The simulator records such answers as
    # indeterminate (`info`), so the checker does not call the resulting order a phantom.
    maybe_committed: bool | None = Field(default=None, alias="maybeCommitted")
    # 429 rate_limited only: the wait in ms (Retry-After rounds it up to whole seconds).
    retry_after_ms: int | None = Field(default=None, alias="retryAfterMs")


class Product(_Strict):
    product_id: str = Field(alias="productId")
    stock: int
    stock_initial: int = Field(alias="stockInitial")
    price_cents: int = Field(alias="priceCents")
    strategy: Strategy
    sold: int


def json_number(value: Any) -> Any:
    """Refuse what pydantic's lax mode would coerce into a number: `false` -> 0, "5" -> 5.
    (Strict mode would also refuse 5.0, which JSON Schema counts as an integer.)"""
    if isinstance(value, bool | str):
        raise ValueError("must be a JSON number")
    return value


class RateLimit(_Strict):
    """A token bucket per user (and optionally per client IP) in front of any strategy's buy.

    `rate_per_s` tokens refill each second up to `burst`; a buy with an empty bucket answers 429
    `rate_limited` with Retry-After (seconds until a token is back). 0 switches a bucket off."""

    per_user_rate_per_s: float = Field(default=0.0, alias="perUserRatePerS", ge=0, le=1_000_000)
    per_user_burst: int = Field(default=1, alias="perUserBurst", ge=1, le=1_000_000)
    per_ip_rate_per_s: float = Field(default=0.0, alias="perIpRatePerS", ge=0, le=1_000_000)
    per_ip_burst: int = Field(default=1, alias="perIpBurst", ge=1, le=1_000_000)

    @field_validator("*", mode="before")
    @classmethod
    def _json_number(cls, value: Any) -> Any:
        return json_number(value)

    @property
    def enabled(self) -> bool:
        return self.per_user_rate_per_s > 0 or self.per_ip_rate_per_s > 0


class ResetRequest(_Strict):
    product_id: str = Field(alias="productId", pattern=ID_PATTERN)
    stock: int = Field(ge=0, le=10_000_000)
    strategy: Strategy = Strategy.lua
    price_cents: int = Field(default=99_900, alias="priceCents", ge=0, le=10**12)
    # The strategy's own settings (e.g. lock: {"lock_ttl_ms": 2000}); the API validates them
    # against that strategy's Settings model and answers 422 naming the bad one.
    settings: dict[str, float | int | bool | str] = Field(default_factory=dict, max_length=32)
    # Off unless given: any strategy may put the token-bucket limit in front of its buy.
    rate_limit: RateLimit | None = Field(default=None, alias="rateLimit")

    @field_validator("stock", "price_cents", mode="before")
    @classmethod
    def _json_number(cls, value: Any) -> Any:
        return json_number(value)


class QueueState(StrEnum):
    waiting = "waiting"  # behind the admission frontier: poll again
    admitted = "admitted"  # may buy until `expiresInMs` runs out
    expired = "expired"  # admitted, did not buy in time; POST the queue again to rejoin at the back
    purchased = "purchased"  # this ticket's user holds a unit
    sold_out = "sold_out"  # no unit left and no admission outstanding: stop waiting


class QueueStatus(_Strict):
    ticket: int
    state: QueueState
    position: int  # tickets ahead of the admission frontier (0 once admitted)
    expires_in_ms: int = Field(default=0, alias="expiresInMs")


class ResetOk(_Strict):
    product_id: str = Field(alias="productId")
    stock: int
    strategy: Strategy


class Health(_Strict):
    status: str
    worker: str = ""
