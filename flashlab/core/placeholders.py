"""Placeholders in target files: which `{names}` each section defines, checking them, rendering them.

`{port}`, `{redis_port}` and any `{<name>_port}` are free loopback ports the lab picks per stack;
`{workdir}`, `{dir}`, `{python}` are defined on the machine that reads the file; `{product}` and
`{stock}` in the reset and the truth; `{product}`, `{user}` and `{attempt}` per request. `{{`
and `}}` are literal braces. A name used where it is not defined is an error when the file loads
(flashlab.core.target), naming the key and the closest valid name.
"""

from __future__ import annotations

import difflib
import re
import string
from collections.abc import Iterator
from collections.abc import Mapping
from typing import Any

# `{port}`, `{redis_port}`, `{db_port}`...: a free loopback port the lab picks per stack.
PORT_NAME = re.compile(r"^(?:[a-z][a-z0-9]*_)*port$")
# Defined wherever the file is read on this machine: the target's own temp dir (removed with the
# stack), the folder of the target file, the lab's Python interpreter.
PORTS = "<name>_port"  # in a scope: every port placeholder is defined there
LOCAL = frozenset({"workdir", "dir", "python", PORTS})
SALE = LOCAL | {"product", "stock"}
REQUEST = frozenset({"product", "user", "attempt"})
INT_VALUES = frozenset({"stock", "attempt"})  # a JSON value that is only this placeholder: a number


def strings(
    where: str, value: Any, scope: frozenset[str]
) -> Iterator[tuple[str, str, frozenset[str]]]:
    """Every string inside a dumped model (keys of mappings too), with its dotted place."""
    if isinstance(value, str):
        yield where, value, scope
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from strings(f"{where}.{key}", str(key), scope)
            yield from strings(f"{where}.{key}", item, scope)
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            yield from strings(f"{where}[{i}]", item, scope)


def placeholders(text: str) -> list[str]:
    """The `{names}` in `text`, in order; ValueError on a stray brace."""
    return [name for _lit, name, _spec, _conv in string.Formatter().parse(text) if name is not None]


def placeholder_problem(text: str, scope: frozenset[str]) -> str | None:
    """Why `text` cannot be rendered where the names in `scope` are defined (None: it can)."""
    try:
        names = placeholders(text)
    except ValueError as exc:
        return f"{text!r}: {exc} (write {{{{ and }}}} for literal braces)"
    for name in names:
        if not name.isidentifier():
            return (
                f"{text!r}: {{{name}}} is not a placeholder name (write {{{{ and }}}} for braces)"
            )
        if name in scope or (PORTS in scope and PORT_NAME.match(name)):
            continue
        named = sorted(n for n in scope if n != PORTS)
        ports = ["port", "redis_port", "db_port"] if PORTS in scope else []
        close = difflib.get_close_matches(name, named + ports, n=1)
        hint = f"did you mean {{{close[0]}}}? " if close else ""
        defined = ", ".join(named + (["port", PORTS] if ports else [])) or "no placeholders"
        return f"unknown placeholder {{{name}}} ({hint}defined here: {defined})"
    return None


def render(text: str, values: Mapping[str, Any]) -> str:
    """`text` with every `{name}` replaced; the names were checked when the file was loaded."""
    return text.format_map(values)


def render_value(value: Any, values: Mapping[str, Any]) -> Any:
    """A JSON value with its strings rendered; a string that is exactly `{stock}` or
    `{attempt}` becomes that number."""
    if isinstance(value, str):
        names = placeholders(value)
        if len(names) == 1 and value == f"{{{names[0]}}}" and names[0] in INT_VALUES:
            return values[names[0]]
        return render(value, values)
    if isinstance(value, Mapping):
        return {render(str(k), values): render_value(v, values) for k, v in value.items()}
    if isinstance(value, list):
        return [render_value(v, values) for v in value]
    return value
