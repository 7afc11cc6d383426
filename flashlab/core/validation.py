"""One line from a pydantic ValidationError: "field: what is wrong" - the lab's bad-input voice.

Every typed boundary (experiment files, run-directory files, API bodies, fault params, proxy
toxics, summary.json) reports only the first error, naming the field; the options keep each
boundary's wording (the API says `body` for a whole-body error, a file says `(top level)`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError


def first_error(
    exc: ValidationError,
    *,
    prefix: str = "",
    empty: str = "(top level)",
    field_only: bool = False,
    friendly: bool = False,
    choices: bool = False,
    unknown_field: str = "unknown field",
    count_more: bool = False,
) -> str:
    """`field: message` of the first error.

    prefix: put before the field path (`params.`); empty: the field when the error is the
    whole object; field_only: only the first part of the path (later parts name union
    branches, e.g. `count.int`); friendly: drop pydantic's "Value error, " and say
    `unknown_field` for a forbidden extra field; choices: a literal/enum error lists the
    allowed values; count_more: add "(+N more)" when there are more errors.
    """
    errors = exc.errors()
    err = errors[0]
    loc = tuple(err.get("loc", ()))
    where = (prefix + ".".join(str(p) for p in (loc[:1] if field_only else loc))).rstrip(".")
    more = f" (+{len(errors) - 1} more)" if count_more and len(errors) > 1 else ""
    return f"{where or empty}: {_message(err, friendly, choices, unknown_field)}{more}"


def _message(err: Any, friendly: bool, choices: bool, unknown_field: str) -> str:
    msg = str(err.get("msg", "invalid"))
    if friendly:
        msg = msg.removeprefix("Value error, ")
    if choices and err["type"] in ("literal_error", "enum") and "expected" in err.get("ctx", {}):
        msg = f"must be one of {err['ctx']['expected']}"
    if friendly and err["type"] == "extra_forbidden":
        msg = unknown_field
    return msg


def read_yaml(path: Path, what: str, error: type[Exception]) -> Any:
    """A YAML file's content; `error` with one line naming the file (and the line) when it
    cannot be read or parsed. `what` names the kind of file ("experiment file")."""
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise error(f"{path}: no such file") from None
    except IsADirectoryError:
        raise error(f"{path}: is a directory, not an {what}" if what[0] in "aeiou" else
                    f"{path}: is a directory, not a {what}") from None  # fmt: skip
    except UnicodeDecodeError as exc:
        raise error(f"{path}: not UTF-8 text (byte {exc.start})") from None
    except OSError as exc:
        raise error(f"{path}: cannot read ({exc.strerror or exc})") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise error(f"{path}:{where} not valid YAML ({getattr(exc, 'problem', exc)})") from None
