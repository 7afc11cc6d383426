"""One attempt against a target: the request it sends (`build_request`) and how its answer is read (`AnswerReader`).

The answer rules of a target file (flashlab.core.target.AnswerRule) are compiled once, in the
process that reads answers (a load worker, the probe); the first rule that matches an answer
decides its outcome and extracts the order id and the stock left. An answer no rule matches is
`unknown`, with its status and a body excerpt.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from flashlab.core.placeholders import render
from flashlab.core.placeholders import render_value
from flashlab.core.target import OUTCOME_CODES
from flashlab.core.target import AnswerRule
from flashlab.core.target import Buy
from flashlab.core.target import Outcome
from flashlab.core.target import compile_path
from flashlab.core.target import status_set

BODY_EXCERPT = 160  # characters of an unmatched answer's body kept in the history


@dataclass(frozen=True, slots=True)
class Request:
    """One rendered buy: what the client sends."""

    method: str
    path: str
    headers: dict[str, str]
    params: dict[str, str]
    body: bytes | None


def build_request(buy: Buy, values: Mapping[str, Any]) -> Request:
    """The buy request for one attempt (`values`: product, user, attempt)."""
    headers = {render(k, values): render(v, values) for k, v in buy.headers.items()}
    body: bytes | None = None
    if buy.json_body is not None:
        body = orjson.dumps(render_value(buy.json_body, values))
        if not any(k.lower() == "content-type" for k in headers):  # the file's own one wins
            headers = {"content-type": "application/json", **headers}
    elif buy.body is not None:
        body = render(buy.body, values).encode()
    params = {render(k, values): render(v, values) for k, v in buy.query.items()}
    return Request(buy.method, render(buy.path, values), headers, params, body)


@dataclass(frozen=True, slots=True)
class Reading:
    """One answer, read: which rule matched (None: none did), the outcome, what was extracted."""

    rule: int | None
    outcome: Outcome
    order_id: str | None = None
    remaining: int | None = None
    note: str | None = None  # for an unknown answer: status and a body excerpt

    @property
    def code(self) -> str:
        return OUTCOME_CODES[self.outcome]


class AnswerReader:
    """The answer rules, compiled once (in the process that reads answers)."""

    def __init__(self, rules: list[AnswerRule]) -> None:
        self.rules = rules
        self._compiled = [
            (
                status_set(r.status),
                re.compile(r.body) if r.body is not None else None,
                [(compile_path(p), v) for p, v in (r.json_fields or {}).items()],
                compile_path(r.order_id) if r.order_id else None,
                compile_path(r.remaining) if r.remaining else None,
            )
            for r in rules
        ]

    def read(self, status: int, body: bytes) -> Reading:
        text: str | None = None
        data: Any = _UNPARSED
        for index, (statuses, regex, fields, order_path, remaining_path) in enumerate(
            self._compiled
        ):
            if status not in statuses:
                continue
            if regex is not None:
                text = body.decode("utf-8", "replace") if text is None else text
                if not regex.search(text):
                    continue
            if fields:
                data = _json(body) if data is _UNPARSED else data
                if not all(_equal(_first(p, data), want) for p, want in fields):
                    continue
            if order_path is not None or remaining_path is not None:
                data = _json(body) if data is _UNPARSED else data
            order_id = _first(order_path, data) if order_path is not None else None
            remaining = _first(remaining_path, data) if remaining_path is not None else None
            return Reading(
                index,
                self.rules[index].outcome,
                None if order_id is None else str(order_id),
                _int_or_none(remaining),
            )
        excerpt = body.decode("utf-8", "replace")[:BODY_EXCERPT].replace("\n", " ")
        return Reading(None, Outcome.unknown, note=f"HTTP {status}: {excerpt}")


_UNPARSED = object()


def _json(body: bytes) -> Any:
    try:
        return orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        return None


def _first(path: Any, data: Any) -> Any:
    if data is None or data is _UNPARSED:
        return None
    found = path.find(data)
    return found[0].value if found else None


def _equal(value: Any, want: Any) -> bool:
    """A JSON field against the rule's value: booleans only equal booleans (or "true"/"false"),
    a number equals its text ("42" == 42), anything else by ==."""
    if isinstance(want, bool) or isinstance(value, bool):
        if isinstance(want, str):
            return str(value).lower() == want.lower()
        return value is want
    if isinstance(want, str) and value is not None and not isinstance(value, str):
        return str(value) == want
    return bool(value == want)


def _int_or_none(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and re.fullmatch(r"-?\d+", value.strip()):
        return int(value)
    return None
