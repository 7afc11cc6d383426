"""The error tree: every exception class in flashlab is a FlashlabError with a known exit code,
flashlab.core.errors' docstring draws exactly the classes and bases the code has, and the CLI
maps an error to the code its class carries.

The walk imports every flashlab module in a child process (`python tests/test_error_tree.py`):
importing every module (Ray, Docker SDK, papermill when installed) must not leak into the
test process.
"""

from __future__ import annotations

import importlib
import inspect
import json
import pkgutil
import re
import subprocess
import sys
from functools import cache
from typing import Any

import pytest
from typer._click.exceptions import UsageError  # typer >= 0.29 vendors click

from flashlab.analysis.compare import ComparisonError
from flashlab.bench.measured import ToolError
from flashlab.commands.errors import error_exit_code
from flashlab.core import errors
from flashlab.core.extras import MissingExtra
from flashlab.core.platform import PlatformConfigError
from flashlab.core.platform import PlatformError
from flashlab.core.platform import StackStartError
from flashlab.lab.experiment import ExperimentError
from flashlab.system.targets.stores import TargetStoreError

# Not imported by the walk: locust monkey-patches the whole interpreter (gevent) on import.
SKIP_MODULES = {"flashlab.bench.locustfile"}
# The API server's reply signals (system/api/errors.py): raised inside a request and turned into a
# 4xx answer by its replies; they never end a lab command, so no exit code.
HTTP_SIGNALS = {"BadInput", "RateLimited"}
ERROR_EXITS = {
    errors.EXIT_VERDICT_FAIL,
    errors.EXIT_BAD_INPUT,
    errors.EXIT_INCONCLUSIVE,
    errors.EXIT_INFRA,
    errors.EXIT_INTERRUPTED,
}


def _walk() -> dict[str, Any]:
    """Every exception class defined in a flashlab module: name -> module, bases, exit code."""
    import flashlab

    classes: dict[str, dict[str, Any]] = {}
    skipped: list[str] = []
    for info in pkgutil.walk_packages(flashlab.__path__, "flashlab.", onerror=skipped.append):
        if info.name.endswith(".__main__") or info.name in SKIP_MODULES:
            continue
        try:
            module = importlib.import_module(info.name)
        except ImportError as exc:  # an optional extra (ray, docker, papermill) not installed
            skipped.append(f"{info.name}: {exc}")
            continue
        for cls in vars(module).values():
            if not (inspect.isclass(cls) and issubclass(cls, BaseException)):
                continue
            if cls.__module__ != module.__name__:
                continue
            classes[f"{cls.__module__}.{cls.__qualname__}"] = {
                "name": cls.__name__,
                "bases": [base.__name__ for base in cls.__bases__],
                "flashlab_error": issubclass(cls, errors.FlashlabError),
                "exit_code": getattr(cls, "exit_code", None),
            }
    return {"classes": classes, "skipped": skipped}


@cache
def walked() -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, __file__], capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


def _by_name() -> dict[str, dict[str, Any]]:
    classes = walked()["classes"]
    names = [c["name"] for c in classes.values()]
    assert len(names) == len(set(names)), f"two exception classes share a name: {sorted(names)}"
    return {c["name"]: c for c in classes.values()}


def drawn_tree() -> dict[str, tuple[str | None, set[str]]]:
    """name -> (drawn parent, the other bases in brackets), read off the module docstring."""
    doc = errors.__doc__ or ""
    lines = doc.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip().startswith("FlashlabError"))
    node = re.compile(r"^(?P<lead>[\s│├└─]*)(?P<name>[A-Z]\w+)(?: \[(?P<also>[^\]]*)\])?")
    tree: dict[str, tuple[str | None, set[str]]] = {}
    open_nodes: list[tuple[int, str]] = []  # (column, name) of the path down to this line
    for line in lines[start:]:
        if not line.strip():
            break
        match = node.match(line)
        assert match, f"not a tree line: {line!r}"
        column, name = len(match["lead"]), match["name"]
        while open_nodes and open_nodes[-1][0] >= column:
            open_nodes.pop()
        also = {b.strip() for b in match["also"].split(",")} if match["also"] else set()
        assert name not in tree, f"{name} drawn twice"
        tree[name] = (open_nodes[-1][1] if open_nodes else None, also)
        open_nodes.append((column, name))
    return tree


def test_the_walk_finds_the_lab_errors() -> None:
    names = set(_by_name())
    # A walk that imported nothing would pass every test below: these must be there.
    assert {"PlatformError", "ExperimentError", "RunDirError", "ConnectFailed"} <= names
    assert len(names) >= 30, (sorted(names), walked()["skipped"])


def test_every_flashlab_exception_is_a_flashlab_error_with_an_exit_code() -> None:
    strays = []
    for where, cls in walked()["classes"].items():
        if cls["name"] in HTTP_SIGNALS:
            continue
        if not cls["flashlab_error"] or cls["exit_code"] not in ERROR_EXITS:
            strays.append(f"{where} (bases {cls['bases']}, exit_code {cls['exit_code']})")
    assert not strays, "not on the error tree (flashlab.core.errors): " + "; ".join(strays)


def test_the_http_reply_signals_stay_off_the_tree() -> None:
    by_name = _by_name()
    for name in HTTP_SIGNALS:  # if one joins the tree, drop it from HTTP_SIGNALS and draw it
        assert by_name[name]["bases"] == ["Exception"], by_name[name]
        assert not by_name[name]["flashlab_error"]


def test_the_docstring_draws_every_class_under_its_real_bases() -> None:
    tree = drawn_tree()
    code = {name: c for name, c in _by_name().items() if c["flashlab_error"]}
    assert set(tree) == set(code), (
        f"drawn but gone: {sorted(set(tree) - set(code))}; "
        f"missing from the drawing: {sorted(set(code) - set(tree))}"
    )
    for name, (parent, also) in tree.items():
        expected = {parent or "Exception"} | also
        assert set(code[name]["bases"]) == expected, (name, code[name]["bases"], expected)


def test_a_new_branch_needs_no_mapping_in_the_cli() -> None:
    class Unplugged(errors.InfraError):
        """A made-up infrastructure error: its class alone says exit 4."""

    assert error_exit_code(Unplugged("redis unplugged")) == (errors.EXIT_INFRA, "redis unplugged")


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (errors.UserError("--out: not a directory"), (2, "--out: not a directory")),
        (errors.InfraError("no engine answers"), (4, "no engine answers")),
        (ExperimentError("smoke.yaml: load.rate: too low"), (2, "smoke.yaml: load.rate: too low")),
        (ComparisonError("different experiments"), (2, "different experiments")),
        (
            MissingExtra("ray", "--engine ray"),
            (2, "--engine ray needs the 'ray' extra: pip install 'flashlab[ray]'"),
        ),
        (StackStartError("redis: not ready"), (4, "stack: redis: not ready")),
        (PlatformConfigError("workers must be >= 1"), (2, "workers must be >= 1")),
        (TargetStoreError("redis: unreachable"), (4, "stack: redis: unreachable")),
        (ToolError("wrk: no summary line"), (4, "wrk: no summary line")),
        (RuntimeError("boom"), (4, "RuntimeError: boom (FLASHLAB_DEBUG=1 shows the traceback)")),
        (PermissionError("denied"), (4, "PermissionError: denied")),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, BaseException) else "",
)
def test_error_exit_code_follows_the_class(exc: BaseException, expected: tuple[int, str]) -> None:
    assert error_exit_code(exc) == expected


def test_bad_input_errors_are_still_what_their_callers_catch() -> None:
    assert issubclass(ExperimentError, ValueError)  # pydantic validators raise it
    assert issubclass(PlatformConfigError, PlatformError) and issubclass(
        PlatformConfigError, ValueError
    )


def test_a_user_error_takes_no_exit_code_argument() -> None:
    with pytest.raises(TypeError):
        errors.UserError("stack supervisor exited", errors.EXIT_INFRA)  # type: ignore[call-arg]


def test_a_click_usage_error_is_bad_input() -> None:
    code, line = error_exit_code(UsageError("no such option: --fast"))
    assert code == errors.EXIT_BAD_INPUT and "no such option: --fast" in line


if __name__ == "__main__":
    print(json.dumps(_walk()))
