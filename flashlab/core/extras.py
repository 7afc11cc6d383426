"""Optional extras (`pip install 'flashlab[NAME]'`): which modules each brings, and the one-line refusal.

The core (inline/process engines, the local platform, checking and reports) needs none of them.
A registry entry (engine, platform) that needs an extra names it; `require` is called before the
heavy import, so a missing extra is one line and exit 2, never an ImportError traceback.
"""

from __future__ import annotations

import importlib.util

from flashlab.core.errors import UserError

# extra name (as in pyproject [project.optional-dependencies]) -> modules it must make importable
EXTRAS: dict[str, tuple[str, ...]] = {
    "ray": ("ray",),
    "compose": ("docker",),
    "notebooks": ("papermill", "nbclient", "nbformat", "nbconvert", "ipykernel", "jupyterlab"),
    "sql": ("sqlalchemy", "psycopg"),  # a target whose reset or truth is SQL
}


class MissingExtra(UserError):
    """An optional extra is not installed: one line naming the pip command, exit 2."""

    def __init__(self, extra: str, needed_by: str) -> None:
        super().__init__(f"{needed_by} needs the '{extra}' extra: pip install 'flashlab[{extra}]'")
        self.extra = extra


def missing_modules(extra: str) -> list[str]:
    return [name for name in EXTRAS[extra] if importlib.util.find_spec(name) is None]


def require(extra: str, needed_by: str) -> None:
    """Raise MissingExtra when any module of `extra` cannot be imported."""
    if missing_modules(extra):
        raise MissingExtra(extra, needed_by)
