"""The HTTP contract (docs/CONTRACT.md's table), row by row, through nginx on the session's local stack."""

from __future__ import annotations

import itertools
import json
import socket
from collections.abc import Iterator

import httpx
import pytest
import redis

from flashlab.core.contract import ADMIN_HEADER
from flashlab.core.contract import BUY_PATH
from flashlab.core.contract import MAX_BODY_BYTES
from flashlab.core.contract import MAX_ID_LEN
from flashlab.core.contract import RESET_PATH
from flashlab.core.contract import USER_HEADER
from flashlab.core.contract import BuyOk
from flashlab.core.contract import ErrorBody
from flashlab.core.contract import ErrorCode
from flashlab.core.contract import Product
from flashlab.core.contract import ResetRequest
from flashlab.core.contract import Strategy
from flashlab.core.platform import StackInfo
from flashlab.system.admin import AdminClient
from flashlab.system.admin import AdminError
from flashlab.system.keys import ProductKeys

_ids = itertools.count()


def fresh_product(prefix: str = "contract") -> str:
    """Each test gets its own product: the session stack is shared."""
    return f"{prefix}-{next(_ids)}"


@pytest.fixture
def http(local_stack: StackInfo) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=local_stack.base_url, timeout=10.0) as client:
        yield client


@pytest.fixture
def rdb(local_stack: StackInfo) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(local_stack.redis_url, decode_responses=True)
    try:
        yield client
    finally:
        client.close()


def buy(http: httpx.Client, product_id: str, user: str | None = "alice") -> httpx.Response:
    headers = {USER_HEADER: user} if user is not None else {}
    return http.post(BUY_PATH, json={"productId": product_id}, headers=headers)


def assert_error(response: httpx.Response, status: int, code: ErrorCode) -> ErrorBody:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = ErrorBody.model_validate_json(response.content)
    assert body.code is code, body
    return body


def reset(admin: AdminClient, product_id: str, stock: int, **kwargs: object) -> None:
    admin.reset(ResetRequest(product_id=product_id, stock=stock, **kwargs))  # type: ignore[arg-type]


# --------------------------------------------------------------------------- buy: 200 and conflicts


@pytest.mark.parametrize("strategy", list(Strategy))
def test_buy_ok_then_already_purchased_then_sold_out(
    strategy: Strategy, admin: AdminClient, http: httpx.Client
) -> None:
    product = fresh_product(strategy.value)
    reset(admin, product, 2, strategy=strategy)

    first = buy(http, product, "alice")
    assert first.status_code == 200, first.text
    ok = BuyOk.model_validate_json(first.content)
    assert ok.order_id == "o-1" and ok.remaining == 1

    assert_error(buy(http, product, "alice"), 409, ErrorCode.already_purchased)
    assert buy(http, product, "bob").status_code == 200
    assert_error(buy(http, product, "carol"), 410, ErrorCode.sold_out)

    got = admin.product(product)
    assert (got.stock, got.stock_initial, got.sold, got.strategy) == (0, 2, 2, strategy)


def test_busy_when_lock_is_held(admin: AdminClient, http: httpx.Client, rdb: redis.Redis) -> None:
    product = fresh_product("busy")
    reset(admin, product, 5, strategy=Strategy.lock)
    rdb.set(ProductKeys(product).lock, "someone-else", px=30_000)
    response = buy(http, product, "alice")
    assert_error(response, 409, ErrorCode.busy)
    assert int(response.headers["retry-after"]) >= 1
    # The lock of another holder is never deleted by the loser (token-checked release).
    assert rdb.get(ProductKeys(product).lock) == "someone-else"
    rdb.delete(ProductKeys(product).lock)
    assert buy(http, product, "alice").status_code == 200


def test_reset_switches_strategy_even_for_workers_caching_lua(
    admin: AdminClient, http: httpx.Client, rdb: redis.Redis
) -> None:
    """Workers cache lua meta; a reset to `lock` must still route every buy through the lock."""
    product = fresh_product("switch")
    reset(admin, product, 10, strategy=Strategy.lua)
    for user in ("u1", "u2", "u3", "u4"):  # nginx round-robins: both workers cache lua meta
        assert buy(http, product, user).status_code == 200
    reset(admin, product, 10, strategy=Strategy.lock)
    rdb.set(ProductKeys(product).lock, "held", px=30_000)
    for user in ("u5", "u6", "u7", "u8"):
        assert_error(buy(http, product, user), 409, ErrorCode.busy)


def test_reset_clears_buyers_and_orders(
    admin: AdminClient, http: httpx.Client, rdb: redis.Redis
) -> None:
    product = fresh_product("clear")
    reset(admin, product, 3)
    assert buy(http, product, "alice").status_code == 200
    reset(admin, product, 3)
    keys = ProductKeys(product)
    assert rdb.scard(keys.buyers) == 0 and rdb.xlen(keys.orders) == 0
    again = BuyOk.model_validate_json(buy(http, product, "alice").content)
    assert again.order_id == "o-1" and again.remaining == 2


# --------------------------------------------------------------------------- buy: rejected input


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {USER_HEADER: ""},
        {USER_HEADER: "x" * (MAX_ID_LEN + 1)},
        {USER_HEADER: "bad user"},
        {USER_HEADER: "semi;colon"},
    ],
    ids=["missing", "empty", "too-long", "space", "semicolon"],
)
def test_unauthenticated(headers: dict[str, str], admin: AdminClient, http: httpx.Client) -> None:
    product = fresh_product("auth")
    reset(admin, product, 1)
    response = http.post(BUY_PATH, json={"productId": product}, headers=headers)
    assert_error(response, 401, ErrorCode.unauthenticated)
    assert admin.product(product).stock == 1


@pytest.mark.parametrize(
    "content",
    [b'{"productId": "p"', b"", b"not json", b"\xff\xfe", b'{"productId": "p"} trailing'],
    ids=["truncated", "empty", "text", "not-utf8", "trailing"],
)
def test_malformed_json_is_400(content: bytes, http: httpx.Client) -> None:
    response = http.post(BUY_PATH, content=content, headers={USER_HEADER: "alice"})
    assert_error(response, 400, ErrorCode.bad_request)


def test_oversized_body_is_400(http: httpx.Client) -> None:
    # Above the API's limit but below nginx's client_max_body_size: the API itself refuses it.
    body = b'{"productId": "' + b"p" * MAX_BODY_BYTES + b'"}'
    response = http.post(BUY_PATH, content=body, headers={USER_HEADER: "alice"})
    assert_error(response, 400, ErrorCode.bad_request)


@pytest.mark.parametrize(
    "payload",
    [
        {"productId": "p", "extra": 1},
        {"productId": 5},
        {"productId": None},
        {},
        [],
        "p",
        {"productId": "has space"},
        {"productId": "x" * (MAX_ID_LEN + 1)},
        {"product_id": "p"},
    ],
    ids=[
        "unknown-field",
        "int",
        "null",
        "missing",
        "array",
        "string",
        "bad-chars",
        "too-long",
        "snake-case",
    ],
)
def test_schema_violations_are_422(payload: object, http: httpx.Client) -> None:
    response = http.post(BUY_PATH, json=payload, headers={USER_HEADER: "alice"})
    assert_error(response, 422, ErrorCode.validation_error)


def test_unknown_product_is_404(http: httpx.Client) -> None:
    assert_error(buy(http, fresh_product("never-reset")), 404, ErrorCode.not_found)


# --------------------------------------------------------------------------- other routes


def test_product(admin: AdminClient, http: httpx.Client) -> None:
    product = fresh_product("product")
    reset(admin, product, 7, strategy=Strategy.optimistic, price_cents=1234)
    response = http.get(f"/api/v1/products/{product}")
    assert response.status_code == 200
    got = Product.model_validate_json(response.content)
    assert (got.stock, got.stock_initial, got.price_cents, got.strategy, got.sold) == (
        7,
        7,
        1234,
        Strategy.optimistic,
        0,
    )
    assert_error(http.get(f"/api/v1/products/{fresh_product('none')}"), 404, ErrorCode.not_found)
    assert_error(http.get("/api/v1/products/bad%20id"), 422, ErrorCode.validation_error)


def test_health_and_readiness(http: httpx.Client) -> None:
    for path in ("/healthz", "/readyz"):
        response = http.get(path)
        assert response.status_code == 200, response.text
        assert response.json()["status"] in ("ok", "ready")


def test_unknown_route_and_wrong_method(http: httpx.Client) -> None:
    assert_error(http.get("/no/such/route"), 404, ErrorCode.not_found)
    assert_error(http.get(BUY_PATH), 405, ErrorCode.method_not_allowed)
    assert_error(http.delete("/healthz"), 405, ErrorCode.method_not_allowed)


# --------------------------------------------------------------------------- nginx's own answers


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("TRACE", BUY_PATH, "POST"),
        ("TRACE", "/healthz", "GET"),
        ("PROPFIND", "/healthz", "GET"),  # a method the API cannot route: nginx refuses it
        ("FOO", f"{BUY_PATH}?x=1", "POST"),
    ],
)
def test_nginx_refused_methods_are_json_405_with_allow(
    method: str, path: str, allow: str, http: httpx.Client
) -> None:
    response = http.request(method, path)
    assert_error(response, 405, ErrorCode.method_not_allowed)
    assert response.headers["allow"] == allow


def test_nginx_uri_too_long_is_json_414(http: httpx.Client) -> None:
    assert_error(http.get("/" + "a" * 20_000), 414, ErrorCode.uri_too_long)


def test_nginx_body_over_its_limit_is_json_400(http: httpx.Client) -> None:
    # Above nginx's client_max_body_size (8k): nginx refuses before the API sees it.
    response = http.post(BUY_PATH, content=b"x" * 20_000, headers={USER_HEADER: "alice"})
    assert_error(response, 400, ErrorCode.bad_request)


def test_nginx_headers_too_large_is_json_400(http: httpx.Client) -> None:
    assert_error(http.get("/healthz", headers={"x-big": "b" * 20_000}), 400, ErrorCode.bad_request)


@pytest.mark.parametrize(
    "raw",
    [b"GARBAGE\r\n\r\n", b"GET / HTTP/1.1\r\nHost: x\r\nNo Colon Header\r\n\r\n"],
    ids=["request-line", "header-line"],
)
def test_nginx_malformed_request_is_json_400(raw: bytes, local_stack: StackInfo) -> None:
    # Raw bytes: no HTTP client sends these. A request without a parsable URI must not turn into
    # nginx's HTML 500 (error pages are internal URIs, not named locations, for that reason).
    host, port = local_stack.base_url.removeprefix("http://").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(raw)
        answer = b""
        while chunk := sock.recv(4096):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400"), answer[:200]
    assert b"application/json" in head.lower()
    assert ErrorBody.model_validate_json(body).code is ErrorCode.bad_request


def test_metrics_exposition(http: httpx.Client) -> None:
    response = http.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert "flashlab_http_requests_total" in response.text


# --------------------------------------------------------------------------- admin


def test_reset_requires_the_token(local_stack: StackInfo, http: httpx.Client) -> None:
    body = {"productId": fresh_product("forbidden"), "stock": 1}
    assert_error(http.post(RESET_PATH, json=body), 403, ErrorCode.forbidden)
    wrong = http.post(RESET_PATH, json=body, headers={ADMIN_HEADER: "wrong"})
    assert_error(wrong, 403, ErrorCode.forbidden)
    with pytest.raises(AdminError) as info:
        AdminClient(local_stack.base_url, "wrong").product("x")  # reads are open; 404 here
    assert info.value.status == 404


@pytest.mark.parametrize(
    "payload",
    [
        {"productId": "p", "stock": -1},
        {"productId": "p", "stock": 1, "strategy": "magic"},
        {"productId": "p", "stock": 1, "surprise": True},
        {"stock": 1},
        {"productId": "p", "stock": 1, "strategy": "lua", "settings": {"lock_tll_ms": 500}},
        {"productId": "p", "stock": 1, "strategy": "lock", "settings": {"lock_ttl_ms": 1}},
        {"productId": "p", "stock": False},  # not silently 0
        {"productId": "p", "stock": "5"},  # not silently 5
        {"productId": "p", "stock": 1, "priceCents": 10**22},  # beyond the declared maximum
    ],
    ids=[
        "negative-stock",
        "unknown-strategy",
        "unknown-field",
        "missing-id",
        "setting-unknown",
        "setting-out-of-range",
        "bool-for-int",
        "string-for-int",
        "huge-price",
    ],
)
def test_reset_validation(
    payload: dict[str, object], local_stack: StackInfo, http: httpx.Client
) -> None:
    response = http.post(RESET_PATH, json=payload, headers={ADMIN_HEADER: local_stack.admin_token})
    assert_error(response, 422, ErrorCode.validation_error)
    if "settings" in payload:  # the message names the strategy setting at fault
        assert response.json()["message"].startswith(f"settings.{next(iter(payload['settings']))}")
    malformed = http.post(RESET_PATH, content=b"{", headers={ADMIN_HEADER: local_stack.admin_token})
    assert_error(malformed, 400, ErrorCode.bad_request)


def test_reset_takes_settings_of_other_strategies_but_applies_only_its_own(
    local_stack: StackInfo, http: httpx.Client, rdb: redis.Redis
) -> None:
    # One experiment file drives a matrix over strategies: its settings name several strategies.
    body = {
        "productId": "mixed",
        "stock": 3,
        "strategy": "lock",
        "settings": {"lock_ttl_ms": 700, "naive_delay_ms": 5},
    }
    response = http.post(RESET_PATH, json=body, headers={ADMIN_HEADER: local_stack.admin_token})
    assert response.status_code == 200, response.text
    stored = json.loads(rdb.hget(ProductKeys("mixed").meta, "settings"))
    assert stored == {"lock_ttl_ms": 700}
