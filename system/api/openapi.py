"""The routes' OpenAPI documentation: JSON bodies with their `$ref`s inlined, headers, error answers."""

from __future__ import annotations

from typing import Any

from flashlab.core.contract import STATUS_OF
from flashlab.core.contract import ErrorBody
from flashlab.core.contract import ErrorCode
from flashlab.core.contract import ResetRequest
from flashlab.system.api.replies import JSON
from flashlab.system.strategies import all_settings_model


def inline_refs(node: Any, defs: dict[str, Any]) -> Any:
    """Replace pydantic's local `#/$defs/X` refs by their definitions (they do not resolve
    inside an OpenAPI document, so schema-driven clients and fuzzers could not use them)."""
    if isinstance(node, dict):
        ref = node.get("$ref", "")
        if ref.startswith("#/$defs/"):
            rest = {k: v for k, v in node.items() if k != "$ref"}
            return {**inline_refs(defs[ref.removeprefix("#/$defs/")], defs), **rest}
        return {k: inline_refs(v, defs) for k, v in node.items() if k != "$defs"}
    if isinstance(node, list):
        return [inline_refs(v, defs) for v in node]
    return node


def openapi_body(model: type[Any]) -> dict[str, Any]:
    """A route's required JSON request body: the model's schema, refs inlined."""
    schema = model.model_json_schema(by_alias=True)
    schema = inline_refs(schema, schema.get("$defs", {}))
    return {"requestBody": {"required": True, "content": {JSON: {"schema": schema}}}}


def reset_body() -> dict[str, Any]:
    """The reset's OpenAPI body: ResetRequest, with `settings` typed by every strategy's fields."""
    body = openapi_body(ResetRequest)
    schema = body["requestBody"]["content"][JSON]["schema"]
    settings = all_settings_model().model_json_schema(by_alias=True)
    schema["properties"]["settings"] = inline_refs(settings, settings.get("$defs", {}))
    return body


def body_and_header(
    model: type[Any], header: str, schema: dict[str, Any], body: dict[str, Any] | None = None
) -> dict[str, Any]:
    """OpenAPI extra of a POST route: its JSON body (the model's, unless given) and its header."""
    param = {"name": header, "in": "header", "required": True, "schema": schema}
    return {**(body or openapi_body(model)), "parameters": [param]}


def error_answers(*codes: ErrorCode) -> dict[int | str, dict[str, Any]]:
    """The `responses` of a route that may answer these error codes (one ErrorBody each)."""
    return {STATUS_OF[c]: {"model": ErrorBody, "description": c.value} for c in codes}


def shopper_errors(*conflicts: ErrorCode) -> dict[int | str, dict[str, Any]]:
    """The answers a shopper's POST (buy, queue join) documents; `conflicts` are its own 409s."""
    return error_answers(
        ErrorCode.unauthenticated,
        ErrorCode.bad_request,
        ErrorCode.validation_error,
        ErrorCode.not_found,
        *conflicts,
        ErrorCode.sold_out,
        ErrorCode.rate_limited,
        ErrorCode.backend_unavailable,
    )
