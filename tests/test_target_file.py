"""Target files as a model (flashlab.core.target): loading, one-line errors naming the key, reading
answers, building requests, the facts a target offers, and experiments that name a target.

No process is started: everything here is the file and what the lab reads off it.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from flashlab.core.answers import BODY_EXCERPT
from flashlab.core.answers import AnswerReader
from flashlab.core.answers import build_request
from flashlab.core.facts import Fact
from flashlab.core.placeholders import render_value
from flashlab.core.target import OUTCOME_CODES
from flashlab.core.target import AnswerRule
from flashlab.core.target import Buy
from flashlab.core.target import Outcome
from flashlab.core.target import Role
from flashlab.core.target import TargetError
from flashlab.core.target import TargetSpec
from flashlab.core.target import TruthSpec
from flashlab.core.target import load_target
from flashlab.core.target import looks_like_target
from flashlab.core.target import parse_target
from flashlab.lab.experiment import Experiment
from flashlab.lab.experiment import ExperimentError
from flashlab.lab.experiment import StackSpec
from flashlab.lab.experiment import load_experiment
from flashlab.lab.experiment import parse_experiment

ROOT = Path(__file__).resolve().parent.parent
TARGETS = ROOT / "targets"
TARGET_EXPERIMENTS = ROOT / "experiments" / "targets"
SHIPPED = sorted(TARGETS.glob("*.yaml"))
PORT = re.compile(r"(?<!\{)\{((?:[a-z][a-z0-9]*_)*port)\}")

# The smallest useful target: a Redis the lab starts, an API, one answer rule per outcome kind.
MINIMAL: dict[str, Any] = {
    "name": "mini",
    "base_url": "http://127.0.0.1:{port}",
    "start": [
        {
            "name": "redis",
            "command": "redis-server --port {redis_port}",
            "ready": {"tcp": "127.0.0.1:{redis_port}"},
            "role": "redis",
        },
        {"name": "api", "command": "node s.js", "env": {"PORT": "{port}"}, "role": "worker"},
    ],
    "reset": {"redis": ["SET stock:{product} {stock}"]},
    "buy": {"path": "/buy", "headers": {"x-user-id": "{user}"}, "json": {"p": "{product}"}},
    "answers": [
        {"status": 200, "outcome": "ok", "order_id": "$.id", "remaining": "$.left"},
        {"status": 410, "body": "sold out", "outcome": "sold_out"},
    ],
    "truth": {"redis": {"url": "redis://127.0.0.1:{redis_port}", "stock": "GET stock:{product}"}},
}


def _target(change: Callable[[dict[str, Any]], Any] | None = None) -> dict[str, Any]:
    data = copy.deepcopy(MINIMAL)
    if change is not None:
        change(data)
    return data


def _refusal(data: Any) -> str:
    """The one-line TargetError `data` is refused with."""
    with pytest.raises(TargetError) as caught:
        parse_target(data, "t.yaml")
    message = str(caught.value)
    assert "\n" not in message, message
    return message


# --- the shipped target files ------------------------------------------------------------------


def _roles_in(data: dict[str, Any]) -> dict[str, str]:
    """role -> the first process (or Compose service) the raw file gives it."""
    start = data.get("start")
    named = (
        [(p["name"], p.get("role")) for p in start]
        if isinstance(start, list)
        else [(name, s.get("role")) for name, s in (start or {}).get("services", {}).items()]
    )
    out: dict[str, str] = {}
    for name, role in named:
        if role is not None:
            out.setdefault(role, name)
    return out


def _facts_in(data: dict[str, Any]) -> set[Fact]:
    """The request and answer facts, read off the raw file's text."""
    facts = {Fact.user} if "{user}" in json.dumps(data["buy"]) else set()
    if any(r.get("order_id") for r in data["answers"] if r["outcome"] == "ok"):
        facts.add(Fact.order_id)
    if any(r.get("remaining") for r in data["answers"]):
        facts.add(Fact.remaining)
    return facts


@pytest.mark.parametrize("path", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_every_shipped_target_file_loads_and_offers_what_its_file_says(path: Path) -> None:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    spec = load_target(path)
    assert spec.name == path.stem
    assert spec.file == str(path.resolve()) and spec.folder == path.resolve().parent
    assert {r.value: n for r, n in spec.roles().items()} == _roles_in(data)
    ports = sorted(set(PORT.findall(json.dumps(data))))
    assert sorted(spec.port_names()) == ports and spec.port_names()[0] == "port"
    assert set(spec.facts()) == _facts_in(data)
    assert spec.truth is not None and spec.truth.source == next(iter(data["truth"]))
    assert looks_like_target(data)


def test_shipped_target_experiments_are_not_mistaken_for_target_files() -> None:
    for path in sorted(TARGET_EXPERIMENTS.glob("*.yaml")):
        assert not looks_like_target(yaml.safe_load(path.read_text(encoding="utf-8"))), path


def test_node_lock_is_a_redis_and_an_api_with_every_fact() -> None:
    spec = load_target(TARGETS / "node-lock.yaml")
    assert spec.roles() == {Role.redis: "redis", Role.worker: "api"}
    assert spec.port_names() == ["port", "redis_port"]
    assert spec.facts() == {Fact.user, Fact.order_id, Fact.remaining}
    assert spec.truth is not None and spec.truth.source == "redis"
    assert spec.truth.fields() == ["stock", "orders", "order_id", "user_id", "ts_ms"]
    assert [p.respawns for p in spec.processes()] == [False, True]  # workers come back


def test_pg_atomic_is_a_database_and_an_api_whose_columns_are_known_only_once_read() -> None:
    spec = load_target(TARGETS / "pg-atomic.yaml")
    assert spec.roles() == {Role.db: "postgres", Role.worker: "api"}
    assert spec.port_names() == ["port", "db_port"]
    assert spec.facts() == {Fact.user, Fact.order_id, Fact.remaining}
    assert spec.truth is not None and spec.truth.source == "sql"
    assert spec.truth.fields() == ["stock", "orders"]


# --- bad input: one line naming the key --------------------------------------------------------


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    """A change setting the dotted `path` (list indexes as numbers) of a target to `value`."""

    def change(data: dict[str, Any]) -> None:
        *parents, leaf = path.split(".")
        node: Any = data
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        if isinstance(node, list):
            node[int(leaf)] = value
        else:
            node[leaf] = value

    return change


BAD: list[tuple[str, Callable[[dict[str, Any]], Any], str]] = [
    ("top-level typo", _set("answerz", []), "answerz: unknown key (did you mean 'answers'?)"),
    ("rule typo", _set("answers.0.outcom", "ok"), "answers.0.outcom: unknown key (did you mean"),
    ("process typo", _set("start.0.rol", "redis"), "start.0.rol: unknown key (did you mean 'role'?)"),
    ("usr", _set("buy.headers.x-user-id", "{usr}"),
     "buy.headers.x-user-id: unknown placeholder {usr} (did you mean {user}?"),
    ("prot", _set("base_url", "http://127.0.0.1:{prot}"),
     "base_url: unknown placeholder {prot} (did you mean {port}?"),
    ("produkt", _set("reset.redis", ["DEL o:{produkt}"]),
     "reset.redis[0]: unknown placeholder {produkt} (did you mean {product}?"),
    ("user in reset", _set("reset.redis", ["DEL bought:{user}"]),
     "reset.redis[0]: unknown placeholder {user} (defined here: dir, product, python, stock,"),
    ("redis_port in buy", _set("buy.path", "/buy/{redis_port}"),
     "buy.path: unknown placeholder {redis_port} (defined here: attempt, product, user)"),
    ("stray {", _set("buy.path", "/buy/{"), "buy.path: '/buy/{': Single '{' encountered"),
    ("stray }", _set("buy.json", {"p": "a}b"}), "buy.json.p: 'a}b': Single '}' encountered"),
    ("bad JSONPath", _set("answers.0.order_id", "$.data["), "answers.0.order_id: invalid JSONPath"),
    ("bad regex", _set("answers.1.body", "sold (out"), "answers.1.body: invalid regex 'sold (out'"),
    ("6xx", _set("answers.0.status", "6xx"), "answers.0.status: '6xx': must be a status"),
    ("700", _set("answers.0.status", [700]), "answers.0.status: [700]: statuses are 100..599"),
    ("true", _set("answers.0.status", True), "answers.0.status: must be a status, a list"),
    ("2.5", _set("answers.0.status", 2.5), "answers.0.status: must be a status, a list"),
    ("two truths", _set("truth.sql", {"url": "sqlite://", "stock": "SELECT 1"}),
     "truth: give exactly one of redis, sql, http (got redis, sql)"),
    ("no truth source", _set("truth", {}), "truth: give exactly one of redis, sql, http (got none)"),
    ("truth reads nothing", _set("truth.redis", {"url": "redis://x"}),
     "truth: redis: read at least one of stock, buyers, orders"),
    ("truth order path", _set("truth.redis.orders", {"command": "LRANGE o 0 -1", "user": "$.["}),
     "truth.redis.orders.user: invalid JSONPath"),
    ("tcp and http", _set("start.0.ready", {"tcp": "127.0.0.1:1", "http": "/health"}),
     "start.0.ready: give exactly one of tcp or http"),
    ("same names", _set("start.1.name", "redis"),
     "start: process names must differ (repeated: redis)"),
    ("compose role", _set("start", {"compose": "c.yml", "services": {"api": {"role": "boss"}}}),
     "start.services.api.role: must be one of 'redis', 'db', 'worker' or 'gateway'"),
    ("no answers", _set("answers", []), "answers: List should have at least 1 item"),
    ("json and body", _set("buy.body", "raw"), "buy: give json or body, not both"),
    ("empty reset", _set("reset", {}), "reset: give at least one of redis, sql, http, command"),
]  # fmt: skip


@pytest.mark.parametrize(("change", "needle"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_a_bad_target_is_refused_in_one_line_naming_the_key(
    change: Callable[[dict[str, Any]], Any], needle: str
) -> None:
    assert _refusal(_target(change)).startswith(f"t.yaml: {needle}")


def test_the_minimal_target_itself_is_valid() -> None:
    spec = parse_target(_target(), "t.yaml")
    assert spec.name == "mini" and spec.file is None and spec.folder == Path.cwd()


def test_a_placeholder_used_where_it_is_not_defined_is_not_offered_as_a_hint() -> None:
    message = _refusal(_target(_set("reset.redis", ["DEL bought:{user}"])))
    defined = message.split("defined here: ", 1)[1]
    assert "did you mean" not in message and "user" not in defined


def test_a_target_that_is_not_a_mapping_is_refused() -> None:
    assert _refusal([MINIMAL]) == "t.yaml: top level must be a mapping of keys"
    assert _refusal("buy") == "t.yaml: top level must be a mapping of keys"


def test_invalid_yaml_is_one_line_naming_the_file_and_the_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("name: x\nbuy: {path: /b\nanswers: []\n", encoding="utf-8")
    with pytest.raises(TargetError) as caught:
        load_target(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: line ") and "not valid YAML" in message
    assert "\n" not in message


def test_a_missing_target_file_or_a_folder_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(TargetError, match=r"^.*nope\.yaml: no such file$"):
        load_target(tmp_path / "nope.yaml")
    with pytest.raises(TargetError, match=r"is a directory, not a target file$"):
        load_target(tmp_path)


def test_a_loaded_file_knows_its_folder(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "mini.yaml"
    path.parent.mkdir()
    path.write_text(yaml.safe_dump(_target()), encoding="utf-8")
    spec = load_target(path)
    assert spec.file == str(path.resolve()) and spec.folder == path.parent.resolve()


# --- reading answers ---------------------------------------------------------------------------


def _reader(*rules: dict[str, Any]) -> AnswerReader:
    return AnswerReader([AnswerRule.model_validate(r) for r in rules])


def _json(value: Any) -> bytes:
    return json.dumps(value).encode()


def test_the_first_matching_rule_decides_so_order_matters() -> None:
    generic = {"status": "4xx", "outcome": "rejected"}
    specific = {"status": 409, "body": "busy", "outcome": "busy"}
    assert _reader(specific, generic).read(409, b"lock busy").outcome == Outcome.busy
    assert _reader(generic, specific).read(409, b"lock busy").outcome == Outcome.rejected
    assert _reader(specific, generic).read(409, b"lock busy").rule == 0
    assert _reader(generic, specific).read(409, b"lock busy").rule == 0


@pytest.mark.parametrize(
    ("status", "matching", "not_matching"),
    [
        (200, [200], [201, 204]),
        ([400, 422], [400, 422], [401, 421]),
        ("4xx", [400, 404, 499], [399, 500]),
        ("200-204", [200, 202, 204], [199, 205]),
        (" 5XX ", [500, 503], [499]),
    ],
)
def test_a_status_form_matches_exactly_its_statuses(
    status: Any, matching: list[int], not_matching: list[int]
) -> None:
    reader = _reader({"status": status, "outcome": "ok"})
    assert [reader.read(s, b"").outcome for s in matching] == [Outcome.ok] * len(matching)
    assert {reader.read(s, b"").outcome for s in not_matching} == {Outcome.unknown}


def test_a_body_rule_searches_its_regex_and_falls_through_when_absent() -> None:
    reader = _reader(
        {"status": 400, "body": "Out of stock", "outcome": "sold_out"},
        {"status": 400, "body": "already (purchased|bought)", "outcome": "already_purchased"},
    )
    assert reader.read(400, b'{"error": "Out of stock"}').outcome == Outcome.sold_out
    assert reader.read(400, b"you already bought one").outcome == Outcome.already_purchased
    assert reader.read(400, b"out of stock").outcome == Outcome.unknown  # case counts


@pytest.mark.parametrize(
    ("want", "body", "matches"),
    [
        (True, {"ok": True}, True),
        (True, {"ok": "true"}, False),  # a boolean rule wants a boolean
        (True, {"ok": 1}, False),
        ("true", {"ok": True}, True),  # the rule's text form matches the boolean too
        ("true", {"ok": "true"}, True),
        ("TRUE", {"ok": True}, True),
        ("true", {"ok": 1}, False),
        (42, {"ok": 42}, True),
        (42, {"ok": 42.0}, True),
        (42, {"ok": "42"}, False),  # a number rule wants a number
        ("42", {"ok": 42}, True),  # the rule's text form matches the number too
        ("42", {"ok": "42"}, True),
        (1, {"ok": True}, False),  # a number is no boolean
        ("sold out", {"ok": "sold out"}, True),
        ("sold out", {}, False),  # a missing field equals nothing
    ],
)
def test_a_json_rule_compares_fields_by_their_kind(want: Any, body: Any, matches: bool) -> None:
    reader = _reader({"status": 200, "json": {"$.ok": want}, "outcome": "ok"})
    assert (reader.read(200, _json(body)).outcome == Outcome.ok) is matches


def test_every_json_field_of_a_rule_must_equal() -> None:
    reader = _reader(
        {"status": 409, "json": {"$.e.code": 7, "$.e.kind": "lock"}, "outcome": "busy"}
    )
    assert reader.read(409, _json({"e": {"code": 7, "kind": "lock"}})).outcome == Outcome.busy
    assert reader.read(409, _json({"e": {"code": 7, "kind": "stock"}})).outcome == Outcome.unknown


@pytest.mark.parametrize(
    ("order_id", "remaining", "want_id", "want_remaining"),
    [
        (42, 7, "42", 7),
        ("o-9", "7", "o-9", 7),
        ("o-9", " -3 ", "o-9", -3),
        ("o-9", 7.0, "o-9", 7),
        ("o-9", 7.5, "o-9", None),
        ("o-9", True, "o-9", None),  # a boolean is no count
        ("o-9", "seven", "o-9", None),
        (None, None, None, None),
    ],
)
def test_an_ok_answer_yields_its_order_id_as_text_and_remaining_as_an_int(
    order_id: Any, remaining: Any, want_id: str | None, want_remaining: int | None
) -> None:
    reader = _reader({"status": 200, "outcome": "ok", "order_id": "$.o.id", "remaining": "$.left"})
    reading = reader.read(200, _json({"o": {"id": order_id}, "left": remaining}))
    assert (reading.outcome, reading.order_id, reading.remaining) == (
        Outcome.ok,
        want_id,
        want_remaining,
    )


def test_extraction_paths_that_find_nothing_leave_the_fields_empty() -> None:
    reader = _reader({"status": 200, "outcome": "ok", "order_id": "$.id", "remaining": "$.left"})
    reading = reader.read(200, _json({"other": 1}))
    assert (reading.outcome, reading.order_id, reading.remaining) == (Outcome.ok, None, None)


def test_an_unmatched_answer_is_unknown_with_its_status_and_a_capped_excerpt() -> None:
    body = ("I'm a teapot\n" + "x" * 400).encode()
    reading = _reader({"status": 200, "outcome": "ok"}).read(418, body)
    assert reading.outcome == Outcome.unknown and reading.rule is None
    assert reading.note == "HTTP 418: " + body.decode()[:BODY_EXCERPT].replace("\n", " ")
    assert len(reading.note) == len("HTTP 418: ") + BODY_EXCERPT
    assert reading.code == "unknown"


def test_an_unmatched_answer_that_is_not_utf8_still_gets_a_note() -> None:
    reading = _reader({"status": 200, "outcome": "ok"}).read(502, b"\xff\xfebad gateway")
    assert reading.note is not None and reading.note.startswith("HTTP 502: ")
    assert "bad gateway" in reading.note


def test_a_body_that_is_not_json_matches_no_json_rule_and_does_not_raise() -> None:
    reader = _reader(
        {"status": 409, "json": {"$.detail": "sold out"}, "outcome": "sold_out"},
        {"status": 409, "outcome": "busy"},
    )
    assert reader.read(409, b"<html>conflict</html>").outcome == Outcome.busy
    assert reader.read(409, b"").outcome == Outcome.busy
    only_json = _reader({"status": 409, "json": {"$.detail": "sold out"}, "outcome": "sold_out"})
    assert only_json.read(409, b'{"detail": "sold out"').outcome == Outcome.unknown


def test_a_body_that_is_not_json_extracts_nothing_and_does_not_raise() -> None:
    reader = _reader({"status": 200, "outcome": "ok", "order_id": "$.id", "remaining": "$.left"})
    reading = reader.read(200, b"ok, thanks")
    assert (reading.outcome, reading.order_id, reading.remaining) == (Outcome.ok, None, None)


def test_each_outcome_is_recorded_under_the_stacks_own_code() -> None:
    assert set(OUTCOME_CODES) == set(Outcome)
    assert OUTCOME_CODES[Outcome.unavailable] == "backend_unavailable"
    assert all(OUTCOME_CODES[o] == o.value for o in Outcome if o != Outcome.unavailable)


# --- building requests -------------------------------------------------------------------------

VALUES = {"product": "iphone", "user": "42", "attempt": 3, "stock": 50}


def test_attempt_alone_becomes_a_number_in_a_json_body_and_everything_else_stays_text() -> None:
    buy = Buy.model_validate(
        {
            "path": "/p/{product}",
            "json": {
                "n": "{attempt}",
                "label": "try {attempt}",
                "user": "{user}",  # digits, but a user id is text
                "items": [{"sku": "{product}", "qty": 1}, "{attempt}"],
                "flag": True,
            },
        }
    )
    body = json.loads(build_request(buy, VALUES).body or b"")
    assert body == {
        "n": 3,
        "label": "try 3",
        "user": "42",
        "items": [{"sku": "iphone", "qty": 1}, 3],
        "flag": True,
    }


def test_stock_alone_becomes_a_number_in_a_reset_body() -> None:
    spec = parse_target(
        _target(_set("reset", {"http": {"path": "/admin/{product}", "json": {"stock": "{stock}"}}}))
    )
    assert spec.reset.http is not None
    assert render_value(spec.reset.http[0].json_body, VALUES) == {"stock": 50}
    assert render_value({"s": "{stock} units", "{product}": "{stock}"}, VALUES) == {
        "s": "50 units",
        "iphone": 50,
    }


def test_doubled_braces_are_literal_braces() -> None:
    buy = Buy.model_validate(
        {"path": "/b/{{raw}}", "json": {"t": "{{product}}", "u": "{{{user}}}"}}
    )
    request = build_request(buy, VALUES)
    assert request.path == "/b/{raw}"
    assert json.loads(request.body or b"") == {"t": "{product}", "u": "{42}"}
    assert parse_target(_target(_set("buy.path", "/b/{{raw}}"))).buy.path == "/b/{{raw}}"


def test_a_json_body_gets_its_content_type_and_the_rest_is_rendered() -> None:
    buy = Buy.model_validate(
        {
            "method": "PUT",
            "path": "/shop/{product}/buy",
            "headers": {"x-user-id": "{user}", "x-try": "{attempt}"},
            "query": {"sku": "{product}", "{product}_try": "{attempt}"},
            "json": {"p": "{product}"},
        }
    )
    request = build_request(buy, VALUES)
    assert request.method == "PUT" and request.path == "/shop/iphone/buy"
    assert request.headers == {
        "content-type": "application/json",
        "x-user-id": "42",
        "x-try": "3",
    }
    assert request.params == {"sku": "iphone", "iphone_try": "3"}
    assert request.body == b'{"p":"iphone"}'


def test_the_files_own_content_type_is_sent_once_whatever_its_case() -> None:
    buy = Buy.model_validate(
        {"path": "/b", "headers": {"Content-Type": "application/vnd.shop+json"}, "json": {}}
    )
    headers = build_request(buy, VALUES).headers
    assert headers == {"Content-Type": "application/vnd.shop+json"}


def test_a_raw_body_is_rendered_text_with_no_content_type_added() -> None:
    buy = Buy.model_validate({"path": "/b", "body": "sku={product}&user={user}&n={attempt}"})
    request = build_request(buy, VALUES)
    assert request.body == b"sku=iphone&user=42&n=3"
    assert request.headers == {} and request.method == "POST"


# --- the facts a target offers -----------------------------------------------------------------


def test_a_target_that_sends_no_user_offers_no_user_identity() -> None:
    spec = parse_target(_target(_set("buy.headers", {})))
    assert Fact.user not in spec.facts()
    assert spec.facts() == {Fact.order_id, Fact.remaining}


def test_a_user_sent_anywhere_in_the_buy_is_a_user_identity() -> None:
    assert Fact.user in load_target(TARGETS / "pg-atomic.yaml").facts()  # in the JSON body
    in_query = _target(lambda d: d["buy"].update(headers={}, query={"who": "{user}"}))
    assert Fact.user in parse_target(in_query).facts()
    in_path = _target(lambda d: d["buy"].update(headers={}, path="/users/{user}/buy"))
    assert Fact.user in parse_target(in_path).facts()


def test_no_order_id_extraction_on_an_ok_rule_means_no_order_ids() -> None:
    none = _target(_set("answers", [{"status": 200, "outcome": "ok"}]))
    assert parse_target(none).facts() == {Fact.user}
    on_another_rule = _target(
        _set(
            "answers",
            [
                {"status": 200, "outcome": "ok"},
                {"status": 500, "outcome": "indeterminate", "order_id": "$.id"},
            ],
        )
    )
    assert Fact.order_id not in parse_target(on_another_rule).facts()


@pytest.mark.parametrize(
    ("truth", "fields"),
    [
        ({"redis": {"url": "redis://x", "buyers": "SMEMBERS b"}}, ["orders", "user_id"]),
        ({"redis": {"url": "redis://x", "orders": "LRANGE o 0 -1"}}, ["orders", "order_id"]),
        (
            {"redis": {"url": "redis://x", "stock": "GET s", "orders": {"command": "L", "ts_ms": "$.t"}}},
            ["stock", "orders", "ts_ms"],
        ),
        ({"sql": {"url": "sqlite://", "stock": "SELECT 1"}}, ["stock"]),
        ({"http": {"stock": {"path": "/s", "value": "$.n"}}}, ["stock"]),
        (
            {"http": {"orders": {"path": "/o", "items": "$.items[*]", "user": "$.u", "order_id": "$.i"}}},
            ["orders", "order_id", "user_id"],
        ),
    ],
)  # fmt: skip
def test_the_truth_fields_are_what_the_truth_reads(
    truth: dict[str, Any], fields: list[str]
) -> None:
    assert TruthSpec.model_validate(truth).fields() == fields


# --- experiments that name a target ------------------------------------------------------------


def _experiment(**fields: Any) -> dict[str, Any]:
    data = yaml.safe_load((TARGET_EXPERIMENTS / "node-lock.yaml").read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data | fields


def _exp_refusal(data: dict[str, Any], base_dir: Path = TARGET_EXPERIMENTS) -> str:
    with pytest.raises(ExperimentError) as caught:
        parse_experiment(data, "e.yaml", base_dir)
    message = str(caught.value)
    assert "\n" not in message, message
    return message


def test_an_experiment_finds_its_target_beside_itself_not_in_the_current_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # `../../targets/node-lock.yaml` means nothing from here
    exp = load_experiment(TARGET_EXPERIMENTS / "node-lock.yaml")
    assert exp.target is not None and exp.target.name == "node-lock"
    assert exp.target.file == str((TARGETS / "node-lock.yaml").resolve())


def test_an_experiment_in_any_folder_names_its_target_relative_to_that_folder(
    tmp_path: Path,
) -> None:
    (tmp_path / "targets").mkdir()
    (tmp_path / "targets" / "mini.yaml").write_text(yaml.safe_dump(_target()), encoding="utf-8")
    (tmp_path / "exps").mkdir()
    path = tmp_path / "exps" / "e.yaml"
    path.write_text(yaml.safe_dump({"name": "e", "target": "../targets/mini.yaml"}), "utf-8")
    exp = load_experiment(path)
    assert exp.target is not None and exp.target.name == "mini"
    assert exp.target.folder == (tmp_path / "targets").resolve()


def test_a_bad_target_named_by_an_experiment_is_one_line_naming_both(tmp_path: Path) -> None:
    (tmp_path / "t.yaml").write_text(yaml.safe_dump(_target(_set("buy.path", "/{usr}"))), "utf-8")
    message = _exp_refusal(_experiment(target="t.yaml"), tmp_path)
    assert message.startswith("e.yaml: target: ")
    assert "t.yaml: buy.path: unknown placeholder {usr} (did you mean {user}?" in message


def test_a_chosen_stack_next_to_a_target_is_refused_naming_stack() -> None:
    message = _exp_refusal(_experiment(stack={"workers": 4}))
    assert "stack: a target brings its own" in message


def test_a_stack_left_at_its_defaults_is_no_choice() -> None:
    for stack in ({}, {"workers": 2}, StackSpec().model_dump(mode="json")):
        exp = parse_experiment(_experiment(stack=stack), "e.yaml", TARGET_EXPERIMENTS)
        assert exp.target is not None and exp.stack == StackSpec()


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("strategy", "lock"),
        ("settings", {"lock_ttl_ms": 2000}),
        ("price_cents", 5),
        ("rate_limit", {"per_user_rate_per_s": 1}),
    ],
)
def test_the_labs_own_product_settings_next_to_a_target_are_refused(key: str, value: Any) -> None:
    data = _experiment()
    data["product"] = {**data["product"], key: value}
    assert f"product.{key}: only for the lab's own stack" in _exp_refusal(data)


@pytest.mark.parametrize(
    ("target", "fault", "role", "roles"),
    [("node-lock", "db-kill", "db", "redis, worker"), ("pg-atomic", "redis-kill", "redis", "db, worker")],
)  # fmt: skip
def test_a_fault_whose_role_the_target_lacks_is_refused_naming_the_fault_and_the_roles(
    target: str, fault: str, role: str, roles: str
) -> None:
    data = _experiment(
        target=str(TARGETS / f"{target}.yaml"), faults=[{"fault": fault, "at_s": 1.0}]
    )
    message = _exp_refusal(data)
    assert f"faults.0: {fault} hits the process with role {role}" in message
    assert f"target {target!r} has roles: {roles}" in message


def test_a_fault_on_a_role_the_target_has_is_accepted() -> None:
    data = _experiment(faults=[{"fault": "redis-kill", "at_s": 1.0}])
    exp = parse_experiment(data, "e.yaml", TARGET_EXPERIMENTS)
    assert [f.fault for f in exp.faults] == ["redis-kill"]


def test_a_client_link_fault_needs_a_target() -> None:
    fault = {"fault": "latency", "at_s": 1.0, "params": {"link": "client"}}
    own = {k: v for k, v in _experiment(faults=[fault]).items() if k != "target"}
    assert "faults.0.params.link: 'client' needs a target" in _exp_refusal(own)
    with_target = parse_experiment(_experiment(faults=[fault]), "e.yaml", TARGET_EXPERIMENTS)
    assert with_target.faults[0].params == {"link": "client"}


def test_a_client_that_cannot_speak_a_target_file_is_refused() -> None:
    data = _experiment(engine={"kind": "inline", "client": "raw"})
    assert "engine.client: a target is spoken to by aiohttp (not raw)" in _exp_refusal(data)


def _own_stack_experiment(folder: Path) -> Path:
    """An experiment for the lab's own stack: a chosen stack, strategy and its settings."""
    path = folder / "own.yaml"
    data = {
        "name": "own",
        "stack": {"workers": 4, "durability": "aof-always"},
        "product": {"id": "iphone", "stock": 50, "strategy": "lock", "price_cents": 5,
                    "settings": {"lock_ttl_ms": 2000}},
        "engine": {"kind": "inline", "client": "aiohttp"},
    }  # fmt: skip
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def test_the_target_override_drops_the_labs_stack_and_strategy(tmp_path: Path) -> None:
    path = _own_stack_experiment(tmp_path)
    written = yaml.safe_load(path.read_text(encoding="utf-8"))
    beside = tmp_path / "written.yaml"  # the same target written into the file is a conflict
    beside.write_text(yaml.safe_dump(written | {"target": str(TARGETS / "node-lock.yaml")}))
    with pytest.raises(ExperimentError, match="stack: a target brings its own"):
        load_experiment(beside)
    exp = load_experiment(path, {"target": str(TARGETS / "node-lock.yaml")})
    assert exp.target is not None and exp.target.name == "node-lock"
    assert exp.stack == StackSpec()
    assert exp.product.strategy == Experiment().product.strategy
    assert exp.product.settings == {}
    assert exp.product.price_cents == Experiment().product.price_cents
    assert (exp.product.id, exp.product.stock) == ("iphone", 50)  # the sale itself stays


def test_the_target_override_is_a_path_from_the_current_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As typed on the command line, even when a file of that name sits beside the experiment
    (experiments/targets/node-lock.yaml is an experiment, targets/node-lock.yaml the target)."""
    path = _own_stack_experiment(tmp_path)
    (tmp_path / "targets").mkdir()
    (tmp_path / "targets" / "node-lock.yaml").write_text("name: not-a-target\n", "utf-8")
    monkeypatch.chdir(ROOT)
    exp = load_experiment(path, {"target": "targets/node-lock.yaml"})
    assert exp.target is not None and exp.target.file == str((TARGETS / "node-lock.yaml").resolve())


@pytest.mark.parametrize("path", sorted(TARGET_EXPERIMENTS.glob("*.yaml")), ids=lambda p: p.stem)
def test_a_dumped_target_experiment_validates_again_as_sweeps_do(path: Path) -> None:
    exp = load_experiment(path)
    dumped = json.loads(json.dumps(exp.model_dump(mode="json")))
    again = parse_experiment(dumped, "experiment")  # no base folder: the target is inline
    assert again == exp
    assert again.target is not None and exp.target is not None
    assert again.target.facts() == exp.target.facts() and again.target.file == exp.target.file


def test_a_target_spec_can_be_given_as_an_object() -> None:
    spec = parse_target(_target(), "t.yaml")
    exp = Experiment.model_validate({"target": spec, "stack": StackSpec()})
    assert exp.target is spec
    assert isinstance(TargetSpec.model_validate(spec.model_dump(mode="json")), TargetSpec)
