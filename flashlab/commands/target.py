"""`flashlab target probe|init`: check a target file in a minute, or draft one from an OpenAPI document."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated
from typing import Any

import typer
import yaml
from rich.markup import escape
from rich.table import Table

from flashlab.console import console
from flashlab.console import emit_json
from flashlab.core.errors import UserError
from flashlab.core.platform import PlatformConfigError
from flashlab.core.platform import PlatformError
from flashlab.lab.target_draft import DraftError
from flashlab.lab.target_draft import draft

app = typer.Typer(
    no_args_is_help=True,
    help="Backends the lab did not build: check a target file, or draft one (docs/TARGETS.md).",
)

PROBE_EPILOG = (
    "Examples:\n\n"
    "  flashlab target probe targets/node-lock.yaml\n\n"
    "  flashlab target probe targets/pg-atomic.yaml --stock 2 --json\n\n"
    "It starts the target (or reaches it at base_url), resets STOCK units of PRODUCT, buys once "
    "per shopper until past sell-out plus one repeat buyer, prints every answer with the rule "
    "that read it, then the truth it read back, and stops what it started. Exit 2 when the file "
    "cannot work: the target does not start or answer, a reset or truth query fails, or no "
    "rule matches any answer."
)
INIT_EPILOG = (
    "Examples:\n\n"
    "  flashlab target init --openapi http://127.0.0.1:8000/openapi.json > targets/mine.yaml\n\n"
    "  flashlab target init --openapi openapi.json --path /api/orders --out targets/mine.yaml\n\n"
    "The draft fills the buy request and one answer rule per documented response; reset, truth "
    "and start are left as TODOs to write by hand."
)


@app.command(epilog=PROBE_EPILOG)
def probe(
    file: Annotated[Path, typer.Argument(help="The target file.")],
    product: Annotated[str, typer.Option(help="Product id to reset and buy.")] = "probe",
    stock: Annotated[int, typer.Option(min=1, max=50, help="Units to put on sale.")] = 3,
    json_output: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Try a target file: a few buys, each answer with the rule that read it, the truth read back."""
    # start-up cost: only this path pays for httpx, orjson
    from flashlab.core.target import load_target
    from flashlab.lab.probe import probe as run_probe

    spec = load_target(file)
    try:
        result = run_probe(spec, product, stock)
    except PlatformConfigError:
        raise
    except PlatformError as exc:  # does not start, or its store does not answer: the file's
        raise UserError(f"{file}: {exc}") from None
    if json_output:
        emit_json(result.to_dict())
    else:
        _print_probe(result)
    if result.problem:
        raise UserError(f"{file}: {result.problem}")


def _print_probe(result: Any) -> None:
    table = Table(
        title=f"{result.target}: {len(result.answers)} buys of {result.product!r}, stock {result.stock}",
        caption=escape("rule: [its index in answers:] what it matches -> the outcome"),
    )
    table.add_column("#", justify="right")
    table.add_column("user", no_wrap=True)
    table.add_column("status", justify="right")
    table.add_column("rule -> outcome", overflow="fold", min_width=24)
    table.add_column("order", no_wrap=True)
    table.add_column("left", justify="right")
    table.add_column("body", overflow="ellipsis", no_wrap=True, max_width=32)
    for a in result.answers:
        colour = {"ok": "green", "unknown": "red", "no answer": "red"}.get(a.outcome, "")
        rule = escape(
            f"[{a.rule}] {a.rule_label}" if a.rule is not None else f"no rule -> {a.outcome}"
        )
        table.add_row(
            str(a.n),
            a.user,
            str(a.status or "-"),
            f"[{colour}]{rule}[/]" if colour else rule,
            a.order_id or "",
            "" if a.remaining is None else str(a.remaining),
            escape(a.excerpt or (a.error or "")),
        )
    console.print(table)
    truth = result.truth
    if truth is None:
        return
    stock = "not read" if truth.stock_remaining is None else truth.stock_remaining
    orders = len(truth.orders) if truth.has("orders") else "not read"
    fields = ", ".join(truth.fields) or "nothing (the file has no truth:)"
    console.print(f"truth ({truth.source}): stock left {stock} · orders {orders} · read: {fields}")
    for order in truth.orders[:10]:
        console.print(
            f"  order {order.order_id or '-'} · user {order.user_id or '-'} · ts_ms {order.ts_ms or '-'}"
        )
    console.print(f"[dim]started: {', '.join(result.started) or 'nothing'} · {result.seconds} s[/]")


# `init`'s options (module level, so the command reads as one short function).
OpenApiOpt = Annotated[
    str, typer.Option(help="URL or file of the backend's OpenAPI document (JSON or YAML).")
]
PathOpt = Annotated[
    str | None, typer.Option(help="The purchase operation's path (default: guessed).")
]
OutOpt = Annotated[Path | None, typer.Option(help="Write the draft here (default: stdout).")]


@app.command(epilog=INIT_EPILOG)
def init(openapi: OpenApiOpt, path: PathOpt = None, out: OutOpt = None) -> None:
    """Draft a target file from the backend's OpenAPI document."""
    doc = _read_openapi(openapi)
    try:
        text = draft(doc, openapi, path)
    except DraftError as exc:
        raise UserError(f"--openapi {openapi}: {exc}") from None
    if out is None:
        typer.echo(text, nl=False)
        return
    if out.exists():
        raise UserError(f"--out: {out} exists; not overwriting it")
    out.write_text(text, encoding="utf-8")
    console.print(f"wrote {out}; next: fill its TODOs, then `flashlab target probe {out}`")


def _read_openapi(source: str) -> dict[str, Any]:
    # start-up cost: only this path pays for httpx
    import httpx

    try:
        if "://" in source:
            resp = httpx.get(source, timeout=10.0, follow_redirects=True)
            if resp.status_code != 200:
                raise UserError(f"--openapi: GET {source} answered {resp.status_code}")
            text = resp.text
        else:
            text = Path(source).read_text(encoding="utf-8")
        doc = json.loads(text) if text.lstrip().startswith("{") else yaml.safe_load(text)
    except (httpx.HTTPError, OSError) as exc:
        raise UserError(f"--openapi: cannot read {source} ({exc})") from None
    except (ValueError, yaml.YAMLError) as exc:
        raise UserError(
            f"--openapi: {source} is neither JSON nor YAML ({str(exc).splitlines()[0]})"
        ) from None
    if not isinstance(doc, dict) or "paths" not in doc:
        raise UserError(f"--openapi: {source} is not an OpenAPI document (no `paths`)")
    return doc


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="target")
