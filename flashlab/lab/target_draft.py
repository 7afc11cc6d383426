"""`flashlab target init --openapi`: a target file drafted from the backend's OpenAPI document.

FastAPI and Spring (springdoc) publish one. The draft picks the purchase operation (a POST whose
path, id or summary speaks of buying, ordering or checking out; or the one `--path` names),
fills its body and headers with `{product}` and `{user}` where the names say so, turns every
documented response into an answer rule (examples with a message become body-specific rules)
and guesses where the order id lives. What it cannot know - how to reset the stock, where the
truth is, how to start the backend - it leaves as marked TODOs. `flashlab target probe` checks
the result in a minute.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

import yaml

from flashlab.core.errors import UserError

PURCHASE = re.compile(r"buy|purchase|order|checkout|cart", re.I)
PRODUCT = re.compile(r"^(product|sku|item|article|ticket|offer)(_?id)?$", re.I)
USER = re.compile(r"^(user|customer|buyer|client|account|shopper)(_?id)?$|^x-user(-id)?$", re.I)
ORDER_ID = re.compile(r"^(order_?id|id|_id|order_?number|reference)$", re.I)
REMAINING = re.compile(r"stock|remaining|left|available|inventory", re.I)
OUTCOME_WORDS = (
    (re.compile(r"sold.?out|out of stock|no stock|unavailable stock|exhausted", re.I), "sold_out"),
    (re.compile(r"already", re.I), "already_purchased"),
    (re.compile(r"busy|try again|locked|conflict|retry", re.I), "busy"),
    (re.compile(r"rate|too many", re.I), "rate_limited"),
)
STATUS_OUTCOMES = {409: "busy", 410: "sold_out", 429: "rate_limited", 503: "unavailable"}


class DraftError(UserError, ValueError):
    """The document cannot give a draft (one line, exit 2)."""


def draft(doc: dict[str, Any], source: str, path: str | None = None) -> str:
    """The target file's YAML text, with comments, for the purchase operation of `doc`."""
    op_path, op = _operation(doc, path)
    body_schema = _resolve(doc, _json_schema(op.get("requestBody", {})))
    spec: dict[str, Any] = {
        "name": _name(doc),
        "description": f"drafted from {source}; check every TODO, then: flashlab target probe FILE",
        "base_url": _base_url(doc, source),
        "reset": {"command": "TODO-reset {product} {stock}"},
        "buy": _buy(doc, op_path, op, body_schema),
        "answers": _answers(doc, op),
    }
    header = (
        f"# Drafted by `flashlab target init` from {source} (operation POST {op_path}).\n"
        "# TODO: reset (how to put {stock} units of {product} on sale: redis/sql/http/command),\n"
        "# TODO: truth (where the orders really are: redis/sql/http), start (how to run it),\n"
        "# then `flashlab target probe` this file. docs/TARGETS.md explains every key.\n"
    )
    return header + yaml.safe_dump(spec, sort_keys=False, allow_unicode=True, width=100)


def _operation(doc: dict[str, Any], wanted: str | None) -> tuple[str, dict[str, Any]]:
    posts = [
        (p, item["post"])
        for p, item in (doc.get("paths") or {}).items()
        if isinstance(item, dict) and isinstance(item.get("post"), dict)
    ]
    if wanted is not None:
        for p, op in posts:
            if p == wanted:
                return p, op
        raise DraftError(f"--path: no POST {wanted} in the document (POSTs: {_list(posts)})")
    scored = [
        (
            len(
                PURCHASE.findall(
                    " ".join([p, str(op.get("operationId", "")), str(op.get("summary", ""))])
                )
            ),
            p,
            op,
        )
        for p, op in posts
    ]
    scored = [s for s in scored if s[0] > 0]
    if not scored:
        raise DraftError(
            f"no POST that buys or orders (POSTs: {_list(posts)}); name one with --path"
        )
    scored.sort(key=lambda s: -s[0])
    return scored[0][1], scored[0][2]


def _list(posts: list[tuple[str, Any]]) -> str:
    return ", ".join(p for p, _ in posts) or "none"


def _resolve(doc: dict[str, Any], schema: Any, depth: int = 0) -> dict[str, Any]:
    """`schema` with a top-level $ref followed (and allOf flattened), a few levels deep."""
    if not isinstance(schema, dict) or depth > 8:
        return {}
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/"):
        node: Any = doc
        for part in ref[2:].split("/"):
            node = node.get(part, {}) if isinstance(node, dict) else {}
        return _resolve(doc, node, depth + 1)
    if "allOf" in schema:
        merged: dict[str, Any] = {"properties": {}}
        for part in schema["allOf"]:
            merged["properties"].update(_resolve(doc, part, depth + 1).get("properties", {}))
        return merged
    return schema


def _json_schema(container: dict[str, Any]) -> Any:
    content = container.get("content") or {}
    media: Any = content.get("application/json") or next(iter(content.values()), {})
    return media.get("schema", {}) if isinstance(media, dict) else {}


def _name(doc: dict[str, Any]) -> str:
    title = str((doc.get("info") or {}).get("title") or "target")
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", title).strip("-").lower()[:64] or "target"


def _base_url(doc: dict[str, Any], source: str) -> str:
    servers = doc.get("servers") or []
    if servers and isinstance(servers[0], dict) and "://" in str(servers[0].get("url", "")):
        return str(servers[0]["url"]).rstrip("/")
    parts = urlsplit(source)
    return (
        f"{parts.scheme}://{parts.netloc}"
        if parts.scheme in ("http", "https")
        else "http://127.0.0.1:{port}"
    )


def _buy(
    doc: dict[str, Any], path: str, op: dict[str, Any], body: dict[str, Any]
) -> dict[str, Any]:
    buy: dict[str, Any] = {"method": "POST", "path": _path(path, op)}
    headers = {
        p["name"]: "{user}" if USER.match(p["name"]) else "TODO"
        for p in (_resolve(doc, p) for p in op.get("parameters") or [])
        if p.get("in") == "header" and p.get("name")
    }
    if headers:
        buy["headers"] = headers
    if body.get("properties"):
        buy["json"] = {
            name: _value(name, _resolve(doc, prop)) for name, prop in body["properties"].items()
        }
    return buy


def _path(path: str, op: dict[str, Any]) -> str:
    def fill(m: re.Match[str]) -> str:
        name = m.group(1)
        return "{user}" if USER.match(name) else "{product}"

    return re.sub(r"\{([^}]+)\}", fill, path)


def _value(name: str, prop: dict[str, Any]) -> Any:
    if PRODUCT.match(name):
        return "{product}"
    if USER.match(name):
        return "{user}"
    if prop.get("type") == "integer":
        return prop.get("default", 1)
    return prop.get("default", "TODO")


def _answers(doc: dict[str, Any], op: dict[str, Any]) -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = []
    for code, response in sorted((op.get("responses") or {}).items()):
        if not str(code).isdigit():
            continue
        status = int(code)
        response = _resolve(doc, response)
        if 200 <= status < 300:
            rules.append(_ok_rule(doc, status, response))
            continue
        for message in _example_messages(response):
            outcome = next((o for rx, o in OUTCOME_WORDS if rx.search(message)), None)
            if outcome:
                rules.append({"status": status, "body": re.escape(message), "outcome": outcome})
        rules.append({"status": status, "outcome": _status_outcome(status)})
    return rules or [{"status": 200, "outcome": "ok"}]


def _status_outcome(status: int) -> str:
    if status in STATUS_OUTCOMES:
        return STATUS_OUTCOMES[status]
    return "indeterminate" if status >= 500 else "rejected"


def _ok_rule(doc: dict[str, Any], status: int, response: dict[str, Any]) -> dict[str, Any]:
    rule: dict[str, Any] = {"status": status, "outcome": "ok"}
    schema = _resolve(doc, _json_schema(response))
    for path in _leaf_paths(doc, schema, "$"):
        leaf = path.rsplit(".", 1)[-1]
        if "order_id" not in rule and ORDER_ID.match(leaf):
            rule["order_id"] = path
        elif "remaining" not in rule and REMAINING.search(leaf):
            rule["remaining"] = path
    return rule


def _leaf_paths(
    doc: dict[str, Any], schema: dict[str, Any], prefix: str, depth: int = 0
) -> list[str]:
    out: list[str] = []
    for name, prop in (schema.get("properties") or {}).items():
        prop = _resolve(doc, prop)
        if prop.get("properties") and depth < 3:
            out += _leaf_paths(doc, prop, f"{prefix}.{name}", depth + 1)
        else:
            out.append(f"{prefix}.{name}")
    return out


def _example_messages(response: dict[str, Any]) -> list[str]:
    """Strings in the response's examples (FastAPI `responses=` examples, OpenAPI `example`)."""
    content = response.get("content") or {}
    found: list[str] = []
    for media in content.values():
        examples = [
            e.get("value") for e in (media.get("examples") or {}).values() if isinstance(e, dict)
        ]
        if "example" in media:
            examples.append(media["example"])
        for example in examples:
            found += [v for v in _strings(example) if len(v) < 120]
    return list(dict.fromkeys(found))


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []
