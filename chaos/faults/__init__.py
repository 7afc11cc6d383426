"""The fault catalogue: name -> fault class. A new fault is one module plus one line here."""

from __future__ import annotations

from typing import Any

# name -> "module:Class", filled by the chaos issue; names listed here are valid in experiment files.
FAULTS: dict[str, str] = {}


def fault_names() -> list[str]:
    return sorted(FAULTS)


def fault_param_error(name: str, params: dict[str, Any]) -> str | None:
    """Validate a fault's params; returns an error message or None. Unknown names are caught earlier."""
    import importlib

    module, cls = FAULTS[name].split(":")
    fault_cls = getattr(importlib.import_module(module), cls)
    try:
        fault_cls.Params.model_validate(params)
    except Exception as exc:  # pydantic.ValidationError: keep the first line, it names the field
        return str(exc).splitlines()[1] if "\n" in str(exc) else str(exc)
    return None
