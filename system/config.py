"""Config rendering: the jinja2 templates in system/conf/ shared by the local and Compose platforms."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import jinja2

from flashlab.core.contract import BUY_PATH
from flashlab.core.contract import RESET_PATH

CONF_DIR = Path(__file__).resolve().parent / "conf"


def _fail(message: str) -> None:
    """Template-side validation: `{{ fail("...") }}` aborts rendering with a clear error."""
    raise ValueError(message)


@cache
def _env() -> jinja2.Environment:
    # StrictUndefined: a missing variable is a bug in the caller, never an empty directive.
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(CONF_DIR)),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,  # config files, not HTML
    )
    env.globals["fail"] = _fail
    # The API's POST-only routes (every other route is GET): nginx's own 405 names them in `Allow`.
    env.globals["post_only_paths"] = [BUY_PATH, RESET_PATH]
    return env


def template_names() -> list[str]:
    """The renderable configs, e.g. ["nginx.conf", "prometheus.yml", "redis.conf"]."""
    return sorted(p.name.removesuffix(".j2") for p in CONF_DIR.glob("*.j2"))


def render(name: str, **variables: Any) -> str:
    """Render system/conf/<name>.j2 (name given with or without the .j2 suffix)."""
    filename = name if name.endswith(".j2") else f"{name}.j2"
    try:
        template = _env().get_template(filename)
    except jinja2.TemplateNotFound:
        raise ValueError(
            f"unknown config template {name!r} (have: {', '.join(template_names())})"
        ) from None
    return template.render(**variables)


def write(name: str, path: str | Path, **variables: Any) -> Path:
    """Render `name` into `path` and return the path."""
    out = Path(path)
    out.write_text(render(name, **variables))
    return out


# nginx keeps idle upstream connections for `keepalive_timeout 60s` (nginx.conf.j2). The API
# worker must keep them open LONGER: if uvicorn closes an idle connection (its default is 5 s)
# just as nginx reuses it, nginx cannot retry the non-idempotent POST and answers 502 — a
# spurious indeterminate purchase in the history. 75 s > 60 s closes that race.
UVICORN_KEEPALIVE_S = 75


def uvicorn_argv(python: str, host: str, port: int, log_level: str = "warning") -> list[str]:
    """The one command line of an API worker (the Dockerfile's CMD mirrors it)."""
    return [
        python, "-m", "uvicorn", "flashlab.system.api.app:create_app", "--factory",
        "--host", host, "--port", str(port),
        "--loop", "uvloop", "--http", "httptools",
        "--timeout-keep-alive", str(UVICORN_KEEPALIVE_S),
        "--no-access-log", "--log-level", log_level,
    ]  # fmt: skip
