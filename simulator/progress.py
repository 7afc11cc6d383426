"""Live load counters (launched, in flight, done, ok, answers by code), per worker and merged."""

from __future__ import annotations

from dataclasses import asdict
from dataclasses import dataclass
from dataclasses import field
from typing import Any


@dataclass
class Progress:
    launched: int = 0  # shoppers started
    in_flight: int = 0  # requests sent and not yet answered
    done: int = 0  # shoppers finished (bought, gave up, or stopped)
    ok: int = 0  # acknowledged purchases
    sold_seen: int = 0  # 410 sold_out answers received
    attempts: int = 0  # requests completed (any outcome)
    by_code: dict[str, int] = field(
        default_factory=dict
    )  # "ok", "busy", "timeout", "http_502", ...
    remaining_min: int | None = None  # lowest `remaining` any 200 reported
    workers_lost: int = 0
    queue_polls: int = 0  # waiting-room requests (strategy `queue`): not purchase attempts

    def count(self, key: str) -> None:
        self.by_code[key] = self.by_code.get(key, 0) + 1

    def saw_remaining(self, remaining: int | None) -> None:
        if remaining is not None and (self.remaining_min is None or remaining < self.remaining_min):
            self.remaining_min = remaining

    def copy(self) -> Progress:
        return Progress(**{**asdict(self), "by_code": dict(self.by_code)})

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def merge(cls, parts: list[Progress]) -> Progress:
        total = cls()
        for p in parts:
            total.launched += p.launched
            total.in_flight += p.in_flight
            total.done += p.done
            total.ok += p.ok
            total.sold_seen += p.sold_seen
            total.attempts += p.attempts
            total.workers_lost += p.workers_lost
            total.queue_polls += p.queue_polls
            total.saw_remaining(p.remaining_min)
            for k, v in p.by_code.items():
                total.by_code[k] = total.by_code.get(k, 0) + v
        return total
