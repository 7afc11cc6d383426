"""`flashlab stack up|status|down`: the command line of a stack that runs in the foreground or detached.

The supervisor that owns the platform, its state file (`.flashlab/stack.json`, read by `status`
and `down`), the detached re-exec and the stopping are flashlab.system.detached's; here are the
flags, their checks, what is printed and the hidden `_serve` command a detached supervisor runs
(a re-execution of this module in its own session, which `down` stops with SIGTERM).
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from flashlab.commands.choices import PlatformName
from flashlab.commands.cpus import CpusOpt
from flashlab.commands.cpus import IsolationOpt
from flashlab.commands.cpus import isolation_overrides
from flashlab.commands.errors import FlashlabGroup
from flashlab.console import console
from flashlab.console import die
from flashlab.console import emit_json
from flashlab.core.errors import EXIT_INFRA
from flashlab.core.errors import FlashlabError
from flashlab.core.isolation import Isolation
from flashlab.core.isolation import IsolationError
from flashlab.core.isolation import resolve
from flashlab.core.platform import Durability
from flashlab.core.platform import Platform
from flashlab.core.platform import PlatformError
from flashlab.core.platform import StackConfig
from flashlab.core.platform import StackInfo
from flashlab.core.platform import durability_problem
from flashlab.system.detached import pid_alive
from flashlab.system.detached import read_state
from flashlab.system.detached import start_detached
from flashlab.system.detached import state_path
from flashlab.system.detached import stop_detached
from flashlab.system.detached import supervise
from flashlab.system.detached import supervisor_alive
from flashlab.system.platforms import get_platform

STATE_ENV = "FLASHLAB_STATE_DIR"
DEFAULT_STATE_DIR = ".flashlab"
MAX_WORKERS = 64

app = typer.Typer(
    name="stack",
    help="Start, inspect and stop a flash-sale stack (nginx -> FastAPI workers -> Redis).",
    no_args_is_help=True,
    cls=FlashlabGroup,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

StateDirOpt = Annotated[
    Path,
    typer.Option(
        "--state-dir",
        envvar=STATE_ENV,
        help="Where stack.json and the supervisor log live.",
        show_default=True,
    ),
]


# --------------------------------------------------------------------------- validation


def build_config(
    workers: int, durability: str, prometheus: bool, proxy: bool, cpus: list[int] | None = None
) -> StackConfig:
    problem = durability_problem(durability)
    if problem:
        die(f"--durability: {problem}")
    if not 1 <= workers <= MAX_WORKERS:
        die(f"--workers: {workers} is out of range [1, {MAX_WORKERS}]")
    return StackConfig(
        workers=workers,
        durability=durability,  # type: ignore[arg-type]
        prometheus=prometheus,
        proxy=proxy,
        cpus=cpus,
    )


def stack_split(isolation: str | None, cpus: str | None) -> Isolation:
    """The stack's side of the CPU split (same flags and auto split as `flashlab run`)."""
    spec = isolation_overrides(isolation, cpus).get("isolation", {"mode": "auto"})
    try:
        return resolve(spec["mode"], spec.get("stack_cpus"), spec.get("load_cpus"))
    except IsolationError as exc:
        die(f"--isolation: {exc}")


def check_platform(name: str) -> None:
    """The platform's binaries are here (its name was checked by the parser: a choice)."""
    if name == "local":
        # start-up cost: only this path pays for jinja2, redis, httpx
        from flashlab.system.platforms.local import REQUIRED_BINARIES
        from flashlab.system.platforms.local import require_binary

        for binary in REQUIRED_BINARIES:
            try:
                require_binary(binary)
            except PlatformError as exc:  # StackStartError, with the install hint
                die(str(exc), EXIT_INFRA)


def make_platform(name: str, config: StackConfig) -> Platform:
    try:
        return get_platform(name, config)
    except ImportError as exc:
        die(f"--platform {name}: not available ({exc})", EXIT_INFRA)
    except ValueError as exc:
        die(f"--platform: {exc}")


@contextlib.contextmanager
def _one_line() -> Iterator[None]:
    """The supervisor's errors (flashlab.system.detached) as one line and their exit code."""
    try:
        yield
    except FlashlabError as exc:
        die(exc.one_line(), exc.exit_code)


def _read_state(state_dir: Path) -> StackInfo | None:
    with _one_line():
        return read_state(state_dir)


def ensure_no_live_stack(state_dir: Path) -> None:
    info = _read_state(state_dir)
    if info is not None and supervisor_alive(info):
        die(
            f"a stack is already running (supervisor PID {info.supervisor_pid}, {info.base_url}); "
            f"run `flashlab stack down` first"
        )


# --------------------------------------------------------------------------- output


def info_table(info: StackInfo, live: bool = False) -> Table:
    table = Table(title=f"flashlab stack ({info.platform})", title_justify="left")
    for column in ("component", "kind", "pid/container", "port", "running", "restarts"):
        table.add_column(column)
    for comp in info.components:
        running = pid_alive(comp.pid) if live and comp.pid else comp.running
        table.add_row(
            comp.name,
            comp.kind,
            str(comp.pid or comp.container or "-"),
            str(comp.port or "-"),
            "yes" if running else "[red]no[/]",
            str(comp.restarts),
        )
    return table


def print_info(info: StackInfo, as_json: bool, live: bool = False) -> None:
    if as_json:
        data = info.to_dict()
        if live:
            for comp in data["components"]:
                if comp.get("pid"):
                    comp["running"] = pid_alive(comp["pid"])
        emit_json(data)
        return
    console.print(f"base URL       {info.base_url}")
    console.print(f"Redis URL      {info.redis_url}")
    console.print(f"admin token    {info.admin_token}")
    if info.prometheus_url:
        console.print(f"prometheus     {info.prometheus_url}")
    if info.workdir:
        console.print(f"workdir        {info.workdir}")
    console.print(f"supervisor PID {info.supervisor_pid}")
    for note in info.extra.get("notes", []):
        console.print(f"note: {note}")
    console.print(info_table(info, live))


# --------------------------------------------------------------------------- supervisor


def run_supervisor(
    platform_name: str, config: StackConfig, state_dir: Path, as_json: bool, banner: str
) -> None:
    """Supervise the stack in this process until SIGINT/SIGTERM/SIGHUP (flashlab.system.detached)."""

    def on_ready(info: StackInfo) -> None:
        print_info(info, as_json)
        if banner and not as_json:
            console.print(banner)

    platform = make_platform(platform_name, config)
    with _one_line():
        started = supervise(platform, state_dir, on_ready)
    if started and not as_json:
        console.print("stack stopped; every process it started was reaped")


def _serve_argv(platform_name: str, config: StackConfig, state_dir: Path) -> list[str]:
    """The hidden `_serve` command of this module, with the flags that rebuild `config`."""
    argv = [
        sys.executable,
        "-m",
        "flashlab.commands.stack",
        "_serve",
        "--platform",
        platform_name,
        "--workers",
        str(config.workers),
        "--durability",
        config.durability,
        "--state-dir",
        str(state_dir),
        "--prometheus" if config.prometheus else "--no-prometheus",
    ]
    if config.proxy:
        argv.append("--proxy")
    if config.cpus:
        argv += ["--stack-cpus", ",".join(str(c) for c in config.cpus)]
    return argv


def run_detached(platform_name: str, config: StackConfig, state_dir: Path, as_json: bool) -> None:
    """Re-execute as a background supervisor; return once it has published stack.json."""
    with _one_line():
        info = start_detached(_serve_argv(platform_name, config, state_dir), state_dir)
    print_info(info, as_json)
    if not as_json:
        console.print("detached; stop it with `flashlab stack down`")


# --------------------------------------------------------------------------- commands

_UP_EPILOG = (
    "Examples:\n\n"
    "  flashlab stack up                          # foreground; Ctrl-C stops and reaps it\n\n"
    "  flashlab stack up --detach --workers 4     # background supervisor, then return\n\n"
    "  flashlab stack up --durability aof-always --proxy --json\n\n"
    "  flashlab stack up --platform compose --detach\n\n"
    "  flashlab stack up --detach --cpus 0:1      # stack on CPU 0; run the load with --cpus 0:1"
)


@app.command(epilog=_UP_EPILOG)
def up(
    platform: Annotated[PlatformName, typer.Option(help="Where the stack runs.")] = "local",
    workers: Annotated[int, typer.Option(help="API worker processes.")] = 2,
    durability: Annotated[Durability, typer.Option(help="Redis persistence.")] = "none",
    detach: Annotated[bool, typer.Option("--detach", help="Run in the background.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the stack info as JSON.")] = False,
    prometheus: Annotated[bool, typer.Option(help="Start prometheus if installed.")] = True,
    proxy: Annotated[
        bool, typer.Option("--proxy", help="Put the TCP fault proxy before Redis.")
    ] = False,
    state_dir: StateDirOpt = Path(DEFAULT_STATE_DIR),
    isolation: IsolationOpt = None,
    cpus: CpusOpt = None,
) -> None:
    """Start a stack and print how to reach it (base URL, Redis URL, admin token, PIDs).

    By default the stack is pinned to its side of the CPU split (`--isolation auto`: CPU 0 on
    2 cores); a `flashlab run --target ...` with the same flags pins the load to the other side."""
    split = stack_split(isolation, cpus)
    config = build_config(workers, durability, prometheus, proxy, split.stack)
    check_platform(platform)
    ensure_no_live_stack(state_dir)
    if not as_json:
        console.print(split.describe())
    if detach:
        run_detached(platform, config, state_dir, as_json)
    else:
        run_supervisor(platform, config, state_dir, as_json, "running; press Ctrl-C to stop")


@app.command("_serve", hidden=True)
def serve(
    platform: Annotated[PlatformName, typer.Option()] = "local",
    workers: Annotated[int, typer.Option()] = 2,
    durability: Annotated[Durability, typer.Option()] = "none",
    prometheus: Annotated[bool, typer.Option()] = True,
    proxy: Annotated[bool, typer.Option("--proxy")] = False,
    state_dir: StateDirOpt = Path(DEFAULT_STATE_DIR),
    stack_cpus: Annotated[str | None, typer.Option("--stack-cpus")] = None,
) -> None:
    """The detached supervisor (started by `up --detach`)."""
    pinned_to = [int(c) for c in stack_cpus.split(",")] if stack_cpus else None
    config = build_config(workers, durability, prometheus, proxy, pinned_to)
    check_platform(platform)
    run_supervisor(platform, config, state_dir, as_json=False, banner="")


@app.command(
    epilog="Examples:\n\n  flashlab stack status\n\n  flashlab stack status --json | jq .base_url"
)
def status(
    as_json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
    state_dir: StateDirOpt = Path(DEFAULT_STATE_DIR),
) -> None:
    """Show the running stack (from stack.json) with a live check of every PID."""
    info = _read_state(state_dir)
    if info is None:
        die(
            f"no stack running (no {state_path(state_dir)}); start one with `flashlab stack up --detach`"
        )
    if not supervisor_alive(info):
        die(
            f"stale {state_path(state_dir)}: supervisor PID {info.supervisor_pid} is gone; "
            f"run `flashlab stack down` to clean up",
            EXIT_INFRA,
        )
    print_info(info, as_json, live=True)


@app.command(
    epilog="Examples:\n\n  flashlab stack down\n\n  FLASHLAB_STATE_DIR=/tmp/s flashlab stack down"
)
def down(state_dir: StateDirOpt = Path(DEFAULT_STATE_DIR)) -> None:
    """Stop the detached stack: SIGTERM its supervisor, wait until it and its children are gone."""
    info = _read_state(state_dir)
    if info is None:
        die(f"no stack running (no {state_path(state_dir)})")
    with _one_line():
        said = stop_detached(info, state_dir)
    console.print(said)


if __name__ == "__main__":
    app()
