"""The classification table and backoff bounds."""

from __future__ import annotations

import random

import pytest

from flashlab.simulator.behaviour import backoff_s
from flashlab.simulator.behaviour import classify
from flashlab.simulator.behaviour import next_delay
from flashlab.simulator.behaviour import should_retry
from flashlab.simulator.client import parse_answer
from flashlab.simulator.scenario import Profile


@pytest.mark.parametrize(
    ("status", "code", "failure", "maybe", "type_", "retry"),
    [
        (200, "ok", None, False, "ok", None),
        (409, "busy", None, False, "fail", "busy"),
        (409, "already_purchased", None, False, "fail", None),
        (410, "sold_out", None, False, "fail", None),
        (400, "bad_request", None, False, "fail", None),
        (401, "unauthenticated", None, False, "fail", None),
        (404, "not_found", None, False, "fail", None),
        (422, "validation_error", None, False, "fail", None),
        (503, "backend_unavailable", None, False, "fail", "backend_unavailable"),
        (503, "backend_unavailable", None, True, "info", "backend_unavailable"),
        (502, None, None, False, "info", "gateway"),
        (504, None, None, False, "info", "gateway"),
        (500, None, None, False, "info", "gateway"),
        (0, None, "connect", False, "fail", "connection"),
        (0, None, "timeout", False, "info", "timeout"),
        (0, None, "reset", False, "info", "connection"),
        (0, None, "cancelled", False, "info", None),
    ],
)
def test_classification_table(status, code, failure, maybe, type_, retry) -> None:
    verdict = classify(status, code, failure, maybe)
    assert (verdict.type, verdict.retry_key) == (type_, retry)


def test_parse_answer_reads_codes_and_nginx_pages() -> None:
    ok = parse_answer(200, b'{"orderId":"o1","remaining":4}', None)
    assert (ok.code, ok.order_id, ok.remaining) == ("ok", "o1", 4)
    busy = parse_answer(409, b'{"code":"busy","message":""}', "0.05")
    assert (busy.code, busy.retry_after_s) == ("busy", 0.05)
    maybe = parse_answer(503, b'{"code":"backend_unavailable","maybeCommitted":true}', None)
    assert maybe.maybe_committed and classify(503, maybe.code, None, True).type == "info"
    page = parse_answer(502, b"<html>Bad Gateway</html>", None)
    assert page.code is None and "502" in (page.error or "")


@pytest.mark.parametrize("jitter", ["none", "full", "equal"])
def test_backoff_is_capped_and_jitter_bounded(jitter: str) -> None:
    p = Profile(
        name="p", backoff_base_ms=10, backoff_max_ms=200, backoff_multiplier=3, jitter=jitter
    )
    rng = random.Random(1)
    for attempt in range(1, 12):
        full = min(10 * 3 ** (attempt - 1), 200) / 1000
        for _ in range(200):
            d = backoff_s(p, attempt, rng)
            if jitter == "none":
                assert d == pytest.approx(full)
            elif jitter == "full":
                assert 0 <= d <= full
            else:
                assert full / 2 <= d <= full


def test_backoff_deterministic_per_seed() -> None:
    p = Profile(name="p")
    a = [next_delay(p, k, random.Random(7)) for k in range(1, 6)]
    b = [next_delay(p, k, random.Random(7)) for k in range(1, 6)]
    assert a == b


def test_retry_after_and_think_time_add_up() -> None:
    p = Profile(
        name="p",
        backoff_base_ms=1,
        backoff_max_ms=1,
        jitter="none",
        honor_retry_after=True,
        think_ms=(5, 5),
    )
    assert next_delay(p, 1, random.Random(0), retry_after_s=0.5) == pytest.approx(0.505)


def test_patience_by_attempts_time_and_answer() -> None:
    p = Profile(name="p", max_attempts=3, max_wait_s=1.0, retry_on=["busy", "timeout"])
    busy = classify(409, "busy")
    assert should_retry(p, busy, 1, 0.1, 0.1)
    assert not should_retry(p, busy, 3, 0.1, 0.1)  # out of attempts
    assert not should_retry(p, busy, 1, 0.95, 0.1)  # out of time
    assert not should_retry(p, classify(410, "sold_out"), 1, 0.0, 0.0)
    assert not should_retry(p, classify(409, "already_purchased"), 1, 0.0, 0.0)
    assert not should_retry(p, classify(503, "backend_unavailable"), 1, 0.0, 0.0)  # not in retry_on
