"""Schema-driven fuzzing of the running API through nginx (schemathesis + hypothesis, seeded and
derandomized): valid and invalid inputs alike never produce a 5xx other than 503, never a 500,
and every error the API produces is an ErrorBody."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck
from hypothesis import given
from hypothesis import settings
from schemathesis.generation.modes import GenerationMode

from flashlab.core.contract import ADMIN_HEADER
from flashlab.core.contract import BUY_PATH
from flashlab.core.contract import PRODUCT_PATH
from flashlab.core.contract import RESET_PATH
from flashlab.core.contract import USER_HEADER
from flashlab.core.contract import ErrorBody
from flashlab.core.contract import ResetRequest
from flashlab.core.contract import Strategy
from flashlab.core.platform import StackInfo
from flashlab.system.admin import AdminClient
from flashlab.system.api.app import create_app
from flashlab.system.settings import Settings

EXAMPLES = 60  # per operation and mode: ~600 requests in all

# The OpenAPI document is generated from the app itself (no Redis needed to build it).
SCHEMA = schemathesis.openapi.from_dict(create_app(Settings()).openapi())
POSITIVE, NEGATIVE = GenerationMode.POSITIVE, GenerationMode.NEGATIVE
# (method, path, mode, fixed headers). Fixed headers replace the generated ones so that fuzzed
# bodies get past authentication and reach validation; operations without inputs have
# nothing to make invalid, so they run in positive mode only.
USER = {USER_HEADER: "fuzzer"}
CASES = [
    ("POST", BUY_PATH, POSITIVE, None),
    ("POST", BUY_PATH, NEGATIVE, None),
    ("POST", BUY_PATH, NEGATIVE, USER),
    ("GET", PRODUCT_PATH, POSITIVE, None),
    ("GET", PRODUCT_PATH, NEGATIVE, None),
    ("POST", RESET_PATH, POSITIVE, "admin"),
    ("POST", RESET_PATH, NEGATIVE, "admin"),
    ("POST", RESET_PATH, NEGATIVE, None),
    ("GET", "/healthz", POSITIVE, None),
    ("GET", "/readyz", POSITIVE, None),
]
# Short ids the generator produces early: make them real products so buys also reach Redis.
SEEDED_PRODUCTS = ["0", "1", "a", "A", "_", "-", ".", ":"]


@pytest.fixture
def session() -> Iterator[requests.Session]:
    with requests.Session() as s:
        yield s


def check(response: schemathesis.Response) -> None:
    status = response.status_code
    assert status != 500, f"500 for {response.request.method} {response.request.url}"
    assert status < 500 or status == 503, f"{status}: {response.content[:300]!r}"
    content_type = (response.headers.get("content-type") or [""])[0]
    from_api = content_type.startswith("application/json")
    if status != 200 and from_api:
        ErrorBody.model_validate_json(response.content)
    # Non-JSON errors can only be nginx refusing the request before the API saw it.
    assert from_api or 400 <= status < 500, f"{status} {content_type}"


@pytest.fixture(scope="module")
def seeded(local_stack: StackInfo) -> None:
    with AdminClient(local_stack.base_url, local_stack.admin_token) as admin:
        for product in SEEDED_PRODUCTS:
            admin.reset(ResetRequest(product_id=product, stock=1_000, strategy=Strategy.lua))


@pytest.mark.parametrize(
    ("method", "path", "mode", "fixed"), CASES, ids=lambda v: str(v).strip("/") if v else "-"
)
def test_no_server_errors(
    method: str,
    path: str,
    mode: GenerationMode,
    fixed: dict[str, str] | str | None,
    local_stack: StackInfo,
    seeded: None,
    session: requests.Session,
) -> None:
    operation = SCHEMA[path][method]
    if fixed == "admin":
        fixed = {ADMIN_HEADER: local_stack.admin_token}

    @settings(
        max_examples=EXAMPLES,
        derandomize=True,  # seeded by the test itself: the same cases every run
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def fuzz(case: schemathesis.Case) -> None:
        headers = dict(fixed) if isinstance(fixed, dict) else None  # call() mutates it
        response = case.call(
            base_url=local_stack.base_url, session=session, headers=headers, timeout=10
        )
        check(response)

    fuzz()
