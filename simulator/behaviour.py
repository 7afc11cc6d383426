"""Shopper behaviour: how an answer is classified (ok / fail / info) and what a shopper does next.

What it does next: retry after a backoff, or give up.

The classification rules are Jepsen's: `fail` only when the purchase certainly did not happen,
`info` whenever it may have happened (the request left the client and no definite answer came
back). They live in one table, `RULES`, read top to bottom; the first matching row wins.
"""

from __future__ import annotations

import functools
import random
from dataclasses import dataclass
from typing import Literal

from flashlab.simulator.history import OpType
from flashlab.simulator.scenario import Profile
from flashlab.simulator.scenario import RetryOn

# How a request failed on the client side, when no HTTP answer arrived.
#   connect   - failed before the request was sent (refused, connect timeout): it never reached nginx
#   timeout   - sent, then no answer within request_timeout_s: it may have been processed
#   reset     - sent, then the connection was reset/closed before a full answer
#   cancelled - sent, then the run hit its duration cap (or the worker was lost)
Failure = Literal["connect", "timeout", "reset", "cancelled"]


@dataclass(frozen=True, slots=True)
class Rule:
    """One row of the classification table. `None` in a match field means "any"."""

    status: int | tuple[int, int] | None  # exact status, or an inclusive range
    code: str | None
    maybe_committed: bool | None
    failure: Failure | None
    type: OpType
    retry_key: RetryOn | None  # None: final answer, never retried
    why: str


# fmt: off
RULES: tuple[Rule, ...] = (
    # -- no HTTP answer ----------------------------------------------------------------------
    Rule(0, None, None, "connect",   "fail", "connection", "never sent: refused / connect timeout"),
    Rule(0, None, None, "timeout",   "info", "timeout",    "sent, no answer in time: may have committed"),
    Rule(0, None, None, "reset",     "info", "connection", "sent, connection dropped: may have committed"),
    Rule(0, None, None, "cancelled", "info", None,         "sent, load stopped before the answer"),
    # -- answers from the API ----------------------------------------------------------------
    Rule(200, None, None, None, "ok",   None,   "acknowledged purchase"),
    Rule(409, "busy", None, None, "fail", "busy", "lost the race; nothing written"),
    Rule(409, "already_purchased", None, None, "fail", None, "this user already holds a unit"),
    Rule(410, None, None, None, "fail", None, "sold out"),
    Rule(429, None, None, None, "fail", "rate_limited", "rate limited; retry after Retry-After"),
    Rule((400, 499), None, None, None, "fail", None, "client error: retrying cannot help"),
    Rule(503, None, True, None, "info", "backend_unavailable", "Redis failed after a write may have landed"),
    Rule(503, None, None, None, "fail", "backend_unavailable", "Redis unreachable before any write"),
    # -- answers from nginx: the upstream died / timed out after it may have processed the request
    Rule(502, None, None, None, "info", "gateway", "bad gateway: upstream died mid-request"),
    Rule(504, None, None, None, "info", "gateway", "gateway timeout: upstream may have committed"),
    # -- anything else 5xx (the API must never 500, but if it does the write may have happened)
    Rule((500, 599), None, None, None, "info", "gateway", "unexpected server error"),
)
# fmt: on


@dataclass(frozen=True, slots=True)
class Verdict:
    type: OpType
    retry_key: RetryOn | None
    why: str


def _matches(rule: Rule, status: int, code: str | None, maybe: bool, failure: str | None) -> bool:
    if isinstance(rule.status, tuple):
        if not rule.status[0] <= status <= rule.status[1]:
            return False
    elif rule.status is not None and rule.status != status:
        return False
    if rule.code is not None and rule.code != code:
        return False
    if rule.maybe_committed is not None and rule.maybe_committed != maybe:
        return False
    return rule.failure is None or rule.failure == failure


@functools.lru_cache(maxsize=1024)  # a handful of distinct answers, classified per attempt: memoise
def classify(
    status: int,
    code: str | None = None,
    failure: Failure | None = None,
    maybe_committed: bool = False,
) -> Verdict:
    """Classify one attempt. `status` is 0 when no HTTP answer arrived (then `failure` says why)."""
    for rule in RULES:
        if _matches(rule, status, code, maybe_committed, failure):
            return Verdict(rule.type, rule.retry_key, rule.why)
    # Unlisted (1xx/3xx, or status 0 without a failure kind): we cannot know, so indeterminate.
    return Verdict("info", None, "unclassified answer")


# A target's answers are read by its file's rules into an outcome (flashlab.core.target.Outcome):
# the outcome, not the status, says what happened. Same Jepsen rules: `info` when it may have.
OUTCOME_VERDICTS: dict[str, Verdict] = {
    "ok": Verdict("ok", None, "acknowledged purchase"),
    "busy": Verdict("fail", "busy", "lost the race; nothing written"),
    "sold_out": Verdict("fail", None, "sold out"),
    "already_purchased": Verdict("fail", None, "this user already holds a unit"),
    "rate_limited": Verdict("fail", "rate_limited", "rate limited; retry after Retry-After"),
    "unavailable": Verdict("fail", "backend_unavailable", "the backend could not serve"),
    "rejected": Verdict("fail", None, "refused: retrying cannot help"),
    "indeterminate": Verdict("info", "gateway", "the purchase may have happened"),
    "unknown": Verdict("info", None, "no answer rule matched: may have happened"),
}


def backoff_s(profile: Profile, attempt: int, rng: random.Random) -> float:
    """Delay before attempt `attempt + 1`: capped exponential backoff with the profile's jitter."""
    raw_ms = profile.backoff_base_ms * profile.backoff_multiplier ** max(attempt - 1, 0)
    cap_ms = min(raw_ms, profile.backoff_max_ms)
    if profile.jitter == "full":
        cap_ms = rng.uniform(0.0, cap_ms)
    elif profile.jitter == "equal":
        cap_ms = cap_ms / 2 + rng.uniform(0.0, cap_ms / 2)
    return cap_ms / 1000.0


def think_s(profile: Profile, rng: random.Random) -> float:
    lo, hi = profile.think_ms
    return (rng.uniform(lo, hi) if hi > lo else lo) / 1000.0


def next_delay(
    profile: Profile,
    attempt: int,
    rng: random.Random,
    retry_after_s: float | None = None,
    must_wait: bool = False,
) -> float:
    """Seconds to wait before the next attempt: backoff (+ Retry-After if honoured) + think time.
    `must_wait`: Retry-After is honoured whatever the profile says (429: sooner is refused too)."""
    delay = backoff_s(profile, attempt, rng)
    if (profile.honor_retry_after or must_wait) and retry_after_s is not None:
        delay = max(delay, retry_after_s)
    return delay + think_s(profile, rng)


def should_retry(
    profile: Profile, verdict: Verdict, attempt: int, elapsed_s: float, delay_s: float
) -> bool:
    """Retry only retryable answers the profile cares about, within its patience (attempts and time)."""
    if verdict.retry_key is None or verdict.retry_key not in profile.retry_on:
        return False
    if attempt >= profile.max_attempts:
        return False
    return elapsed_s + delay_s <= profile.max_wait_s
