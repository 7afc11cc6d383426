"""`flashlab target probe`: a target file tried in a minute - a few buys, each answer read by its rules, the truth read back.

It starts (or reaches) the target, resets a small stock, sends one buy per shopper until past
sell-out (the first shopper buys again third, while stock remains), and reads each answer with the file's rules, exactly as a run
does. What comes back says whether the file can work: `ProbeResult.problem` is the one line the
command exits 2 with (every answer unknown, no acknowledgement at all); a target that does not
start, does not answer or whose truth query fails raises before that, naming the cause.
"""

from __future__ import annotations

import time
from dataclasses import asdict
from dataclasses import dataclass
from dataclasses import field
from typing import Any

import httpx

from flashlab.core.answers import AnswerReader
from flashlab.core.answers import build_request
from flashlab.core.platform import StackConfig
from flashlab.core.rundir import Truth
from flashlab.core.target import Outcome
from flashlab.core.target import TargetSpec
from flashlab.system.targets import require_serving
from flashlab.system.targets import start_target

EXCERPT = 80
TIMEOUT_S = 10.0


@dataclass
class ProbeAnswer:
    """One buy: who, what came back, which rule read it, what it meant."""

    n: int
    user: str
    status: int
    excerpt: str
    rule: int | None
    rule_label: str
    outcome: str
    order_id: str | None
    remaining: int | None
    error: str | None = None


@dataclass
class ProbeResult:
    target: str
    base_url: str
    product: str
    stock: int
    started: list[str]
    answers: list[ProbeAnswer] = field(default_factory=list)
    truth: Truth | None = None
    seconds: float = 0.0

    @property
    def problem(self) -> str | None:
        """Why the file cannot work as it is (None: it can)."""
        answered = [a for a in self.answers if a.status]
        if not answered:
            first = self.answers[0].error if self.answers else "no buy was sent"
            return f"base_url: no buy was answered ({first})"
        if all(a.outcome == Outcome.unknown for a in answered):
            statuses = sorted({a.status for a in answered})
            return f"answers: no rule matched any answer (statuses {statuses}); see the table"
        if not any(a.outcome == Outcome.ok for a in answered):
            return f"answers: no buy was acknowledged (outcome ok) with stock {self.stock}"
        return None

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["truth"] = self.truth.model_dump(mode="json") if self.truth else None
        out["problem"] = self.problem
        return out


def probe(
    spec: TargetSpec, product: str = "probe", stock: int = 3, buys: int | None = None
) -> ProbeResult:
    """Start (or reach) the target, reset `stock` units of `product`, buy for `buys` shoppers
    (default stock + 2; the first buys twice) and read the truth; stop what was started."""
    # start-up cost: only this path pays for redis, psutil
    from flashlab.system.targets.reset import reset_target
    from flashlab.system.targets.truth import read_target_truth

    t0 = time.monotonic()
    platform = start_target(spec, StackConfig(prometheus=False), frozenset())
    try:
        info = platform.start()
        result = ProbeResult(
            spec.name, info.base_url, product, stock, [c.name for c in platform.components()]
        )
        require_serving(spec, platform.values, platform.base_url())
        reset_target(spec, platform.values, platform.base_url(), product, stock)
        result.answers = _buys(spec, info.base_url, product, buys or stock + 2)
        result.truth = read_target_truth(spec, platform.values, platform.base_url(), product, stock)
    finally:
        platform.stop()
    result.seconds = round(time.monotonic() - t0, 2)
    return result


def _buys(spec: TargetSpec, base_url: str, product: str, count: int) -> list[ProbeAnswer]:
    reader = AnswerReader(spec.answers)
    users = [f"probe-u{i}" for i in range(1, count + 1)]
    users.insert(min(2, len(users)), users[0])  # a repeat buyer while stock remains
    out = []
    with httpx.Client(timeout=TIMEOUT_S) as client:
        for n, user in enumerate(users, 1):
            req = build_request(spec.buy, {"product": product, "user": user, "attempt": 1})
            try:
                resp = client.request(
                    req.method,
                    base_url.rstrip("/") + req.path,
                    headers=req.headers,
                    params=req.params,
                    content=req.body,
                )
            except httpx.HTTPError as exc:
                out.append(_no_answer(n, user, exc))
                continue
            reading = reader.read(resp.status_code, resp.content)
            label = spec.answers[reading.rule].label() if reading.rule is not None else "-"
            excerpt = resp.content.decode("utf-8", "replace")[:EXCERPT].replace("\n", " ")
            out.append(
                ProbeAnswer(
                    n,
                    user,
                    resp.status_code,
                    excerpt,
                    reading.rule,
                    label,
                    reading.outcome.value,
                    reading.order_id,
                    reading.remaining,
                )
            )
    return out


def _no_answer(n: int, user: str, exc: Exception) -> ProbeAnswer:
    return ProbeAnswer(
        n, user, 0, "", None, "-", "no answer", None, None, f"{type(exc).__name__}: {exc}"
    )


__all__ = ["ProbeAnswer", "ProbeResult", "probe"]
