"""Exit codes mean one thing and nothing ends in a traceback (property-based, Hypothesis).

Generated argv for every command (run in-process through typer's CliRunner), and damaged copies
of a real run directory (each run file deleted, emptied, truncated or garbled): the exit code is
always in 0..4, an error is one line on stderr, a damaged run file is bad input (exit 2) naming
the file. Commands that would start a stack or a long run always get one argument that fails
validation first (a broken experiment file, an out-of-range --workers/--shoppers, an unknown
benchmark), so every example ends in milliseconds and starts no process. A few subprocess cases
check the infrastructure exit code (4) with a stack that cannot start.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st
from support import run_flashlab
from typer.testing import CliRunner

from flashlab.cli import app
from flashlab.core.errors import EXIT_BAD_INPUT
from flashlab.core.errors import EXIT_INFRA

ROOT = Path(__file__).resolve().parent.parent
SMOKE = ROOT / "experiments" / "smoke.yaml"
RUN_FILES = (
    "manifest.json",
    "history.parquet",
    "faults.parquet",
    "truth.json",
    "summary.json",
    "metrics.json",
)
SETTINGS = settings(
    derandomize=True,  # deterministic: the same examples every run
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

runner = CliRunner()


# --- fixtures: inputs that always fail validation ---------------------------------------------


@pytest.fixture(scope="module")
def inputs() -> Iterator[dict[str, Path]]:
    """Broken experiment files (that no flag override can repair) and odd paths, made once."""
    with tempfile.TemporaryDirectory(prefix="flashlab-exit-") as tmp:
        root = Path(tmp)
        files = {
            "bogus_field": "bogus_field: 1\n",
            "bad_yaml": "scenario: [1, 2\n",
            "top_level_list": "- 1\n- 2\n",
            "scalar_section": "scenario: 3\nbogus: 1\n",
            "unknown_fault": "faults:\n  - {fault: no-such-fault, at_s: 1}\n",
            "bad_clause": "hypothesis: ['wat_rate < 1']\n",
        }
        paths = {}
        for name, text in files.items():
            paths[name] = root / f"{name}.yaml"
            paths[name].write_text(text)
        paths["binary"] = root / "binary.yaml"
        paths["binary"].write_bytes(b"\xff\xfe\x00garbage\x80")
        paths["directory"] = root / "a-directory"
        paths["directory"].mkdir()
        paths["missing"] = root / "missing.yaml"
        paths["state"] = root / "state"  # an empty stack state dir: no stack running
        paths["out"] = root / "out"  # --junit/--summary-md may land here (validation passes)
        paths["out"].mkdir()
        yield paths


def _broken_experiments(inputs: dict[str, Path]) -> st.SearchStrategy[str]:
    broken = [k for k in inputs if k not in ("state", "out")]
    return st.sampled_from([str(inputs[k]) for k in broken])


TOKENS = st.sampled_from(
    [
        "",
        "-1",
        "0",
        "1",
        "2.5",
        "abc",
        "lua",
        "naive",
        "none",
        "redis-kill",
        "all",
        "x" * 70,
        "[red]markup[/]",
        "127.0.0.1",
        "http://10.0.0.1:80",
        "redis://127.0.0.1:1/0",
        "--json",
    ]
)
TEXT = TOKENS | st.text(
    alphabet=st.characters(blacklist_categories=["Cs", "Cc"]), min_size=0, max_size=12
)
INTS = st.integers(min_value=-(2**40), max_value=2**40).map(str)


def _flags(options: dict[str, st.SearchStrategy[str] | None]) -> st.SearchStrategy[list[str]]:
    """Any subset of `options` in any order; None marks a boolean flag."""

    def one(name: str) -> st.SearchStrategy[list[str]]:
        value = options[name]
        return st.just([name]) if value is None else value.map(lambda v: [name, v])

    chosen = st.lists(st.sampled_from(sorted(options)), unique=True, max_size=6)
    return chosen.flatmap(lambda names: st.tuples(*(one(n) for n in names))).map(
        lambda parts: [token for part in parts for token in part]
    )


def _output_paths(inputs: dict[str, Path]) -> st.SearchStrategy[str]:
    out = inputs["out"]
    return st.sampled_from(
        [str(out / "j.xml"), str(out / "no" / "dir" / "j.xml"), str(inputs["directory"])]
    )


def _argv(inputs: dict[str, Path]) -> st.SearchStrategy[list[str]]:
    exp = _broken_experiments(inputs)
    out = _output_paths(inputs)
    run_flags = _flags(
        {
            "--shoppers": INTS | TEXT,
            "--stock": INTS,
            "--strategy": TEXT,
            "--engine": TEXT,
            "--seed": INTS | TEXT,
            "--platform": TEXT,
            "--durability": TEXT,
            "--client": TEXT,
            "--target": TEXT,
            "--redis": TEXT,
            "--admin-token": TEXT,
            "--json": None,
            "--no-report": None,
            "--junit": out,
            "--summary-md": out,
            "--bogus": None,
        }
    )
    matrix_flags = _flags(
        {
            "--strategies": TEXT,
            "--faults": TEXT,
            "--durability": TEXT,
            "--shoppers": INTS,
            "--stock": INTS,
            "--json": None,
            "--junit": out,
            "--summary-md": out,
        }
    )
    state = str(inputs["state"])
    bad_workers = st.sampled_from(["0", "-3", "65", "100000", "two"])
    return st.one_of(
        st.tuples(st.just(["run"]), exp.map(lambda e: [e]), run_flags),
        st.tuples(st.just(["matrix", "--base"]), exp.map(lambda e: [e]), matrix_flags),
        st.tuples(
            st.just(["validate"]), st.lists(exp, min_size=1, max_size=3), _flags({"--json": None})
        ),
        st.tuples(
            st.just(["check"]), exp.map(lambda e: [e]), _flags({"--json": None, "--no-write": None})
        ),
        st.tuples(st.just(["report"]), exp.map(lambda e: [e]), _flags({"--matrix": None})),
        st.tuples(st.just(["faults"]), _flags({"--json": None, "--bogus": None}), st.just([])),
        st.tuples(st.just(["schema"]), TEXT.map(lambda t: [t]), st.just([])),
        st.tuples(
            st.just(["stack"]),
            st.sampled_from([["status"], ["down"], ["nope"], []]),
            st.just(["--state-dir", state]),
        ),
        st.tuples(
            st.just(["stack", "up", "--state-dir", state, "--workers"]),
            bad_workers.map(lambda w: [w]),
            _flags({"--durability": TEXT, "--platform": TEXT, "--detach": None, "--json": None}),
        ),
        st.tuples(
            st.just(["bench"]),
            TEXT.filter(
                lambda t: t not in ("all", "ceiling", "simulator", "scale", "reference", "chaos")
            ).map(lambda t: [t]),
            _flags({"--size": TEXT, "--json": None}),
        ),
        st.tuples(
            st.just(["demo", "--shoppers"]),
            st.sampled_from(["0", "99", "20001", "lots"]).map(lambda s: [s]),
            st.just([]),
        ),
        st.tuples(st.just([]), st.lists(TEXT, max_size=3), st.just([])),
    ).map(lambda parts: [token for part in parts for token in part])


def assert_clean(result: object, argv: list[str]) -> None:
    stdout, stderr = result.stdout, result.stderr  # type: ignore[attr-defined]
    code = result.exit_code  # type: ignore[attr-defined]
    exc = result.exception  # type: ignore[attr-defined]
    assert "Traceback" not in stdout + stderr, (argv, stdout + stderr)
    assert exc is None or isinstance(exc, SystemExit), (argv, repr(exc))
    assert 0 <= code <= 4, (argv, code, stderr)
    if code in (EXIT_BAD_INPUT, EXIT_INFRA):
        lines = [line for line in stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("error: "), (argv, stderr)


@settings(SETTINGS, max_examples=120)
@given(data=st.data())
def test_any_flags_on_any_command_end_in_0_to_4_without_traceback(
    inputs: dict[str, Path], data: st.DataObject
) -> None:
    argv = data.draw(_argv(inputs), label="argv")
    result = runner.invoke(app, argv)
    assert_clean(result, argv)


# --- damaged copies of a real run directory ---------------------------------------------------


DAMAGE = st.sampled_from(["delete", "empty", "truncate", "garble", "replace"])
# summary.json deleted is recomputed, not an error: `report` on it is one slow render, not damage.
SUMMARY_DAMAGE = st.sampled_from(["empty", "truncate", "garble", "replace"])


def _damage(path: Path, how: str, data: st.DataObject) -> None:
    if how == "delete":
        path.unlink()
        return
    raw = path.read_bytes()
    if how == "empty":
        path.write_bytes(b"")
    elif how == "truncate":
        path.write_bytes(raw[: data.draw(st.integers(0, max(0, len(raw) - 1)), label="keep")])
    elif how == "replace":
        path.write_bytes(data.draw(st.binary(min_size=1, max_size=256), label="bytes"))
    else:  # garble: flip a few bytes anywhere (header, data pages, footer)
        buf = bytearray(raw)
        spots = data.draw(
            st.lists(st.integers(0, len(buf) - 1), min_size=1, max_size=8), label="at"
        )
        for at in spots:
            buf[at] ^= data.draw(st.integers(1, 255), label="xor")
        path.write_bytes(bytes(buf))


def _judge_damaged(smoke_run: Path, name: str, command: list[str], data: st.DataObject) -> None:
    how = data.draw(SUMMARY_DAMAGE if name == "summary.json" else DAMAGE, label="damage")
    with tempfile.TemporaryDirectory(prefix="flashlab-damaged-") as tmp:
        run_dir = Path(tmp) / "run"
        shutil.copytree(smoke_run, run_dir)
        _damage(run_dir / name, how, data)
        argv = [command[0], str(run_dir), *command[1:]]
        result = runner.invoke(app, argv)
    assert_clean(result, argv)
    assert result.exit_code in (0, 1, 2, 3), (argv, name, how, result.stderr)  # never infra
    if result.exit_code == EXIT_BAD_INPUT:
        assert name in result.stderr or "incomplete" in result.stderr, (name, how, result.stderr)


@settings(SETTINGS, max_examples=30)
@given(data=st.data())
def test_damaged_run_files_are_bad_input_naming_the_file(
    smoke_run: Path, data: st.DataObject
) -> None:
    """`check` reads every run file but summary.json (it recomputes that one)."""
    name = data.draw(st.sampled_from([n for n in RUN_FILES if n != "summary.json"]), label="file")
    flags = data.draw(st.sampled_from([["--no-write"], ["--json", "--no-write"]]), label="flags")
    _judge_damaged(smoke_run, name, ["check", *flags], data)


@settings(SETTINGS, max_examples=8)
@given(data=st.data())
def test_a_damaged_summary_is_bad_input_for_report(smoke_run: Path, data: st.DataObject) -> None:
    """`report` reads summary.json (checked against its model); few examples: a render is slow."""
    _judge_damaged(smoke_run, "summary.json", ["report"], data)


@pytest.mark.parametrize(
    "name", ["manifest.json", "history.parquet", "faults.parquet", "truth.json"]
)
def test_a_deleted_required_file_is_exit_2_naming_it(
    smoke_run: Path, tmp_path: Path, name: str
) -> None:
    run_dir = tmp_path / "run"
    shutil.copytree(smoke_run, run_dir)
    (run_dir / name).unlink()
    result = runner.invoke(app, ["check", str(run_dir)])
    assert result.exit_code == EXIT_BAD_INPUT and f"missing {name}" in result.stderr


def test_corrupt_history_is_one_line_exit_2_not_a_pyarrow_traceback(
    smoke_run: Path, tmp_path: Path
) -> None:
    """The issue's case: `flashlab check` on a corrupt history.parquet, as a real subprocess."""
    run_dir = tmp_path / "run"
    shutil.copytree(smoke_run, run_dir)
    history = run_dir / "history.parquet"
    raw = bytearray(history.read_bytes())
    for at in range(len(raw) // 3, len(raw) // 3 + 64):  # inside the first data page
        raw[at] ^= 0xA5
    history.write_bytes(bytes(raw))
    proc = run_flashlab("check", str(run_dir), timeout=120)
    assert proc.returncode == EXIT_BAD_INPUT, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "history.parquet" in lines[0] and "Traceback" not in proc.stderr


# --- infrastructure: exit 4 -------------------------------------------------------------------


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "flashlab.cli", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
        env=env,
    )


def test_a_stack_that_cannot_start_is_exit_4_and_leaves_an_incomplete_run(tmp_path: Path) -> None:
    empty_bin = tmp_path / "bin"
    empty_bin.mkdir()  # PATH without redis-server or nginx
    junit = tmp_path / "junit.xml"
    proc = _cli(
        "run",
        str(SMOKE),
        "--out",
        str(tmp_path / "run"),
        "--junit",
        str(junit),
        env={**os.environ, "PATH": str(empty_bin)},
    )
    assert proc.returncode == EXIT_INFRA, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "redis-server not found" in lines[0], proc.stderr
    manifest = (tmp_path / "run" / "manifest.json").read_text()
    assert '"complete": false' in manifest and "StackStartError" in manifest
    assert '<error message="stack: redis-server not found' in junit.read_text()


def test_no_docker_engine_is_exit_4(tmp_path: Path) -> None:
    # auto: the image check asks the engine first (build=never would go straight to compose up).
    env = {**os.environ, "DOCKER_HOST": f"unix://{tmp_path}/no-docker.sock"}
    env["FLASHLAB_COMPOSE_BUILD"] = "auto"
    proc = _cli("run", str(SMOKE), "--platform", "compose", "--out", str(tmp_path / "r"), env=env)
    assert proc.returncode == EXIT_INFRA, proc.stderr
    assert "no Docker engine answers" in proc.stderr and "Traceback" not in proc.stderr


def test_one_platform_error_hierarchy_maps_to_its_exit_codes() -> None:
    from flashlab.commands.errors import error_exit_code
    from flashlab.core import platform
    from flashlab.system.platforms.compose import ComposeError
    from flashlab.system.platforms.local import StackError

    assert StackError is platform.PlatformError  # the local platform's name for the same base
    assert issubclass(ComposeError, platform.PlatformError)
    assert issubclass(
        platform.PlatformConfigError, ValueError
    )  # callers catching ValueError still do
    for kind in (
        platform.DockerUnavailable,
        platform.StackStartError,
        platform.ComponentNotRunning,
        ComposeError,
    ):
        code, line = error_exit_code(kind("redis: not ready after 60s"))
        assert (code, line) == (EXIT_INFRA, "stack: redis: not ready after 60s"), kind
    assert (
        error_exit_code(platform.PlatformConfigError("workers must be >= 1"))[0] == EXIT_BAD_INPUT
    )


def test_a_component_dying_outside_a_fault_is_an_infrastructure_error(tmp_path: Path) -> None:
    """SIGKILL one API worker (a process this test's run started) mid-load, in a run without
    faults: no verdict, ComponentNotRunning (exit 4), the directory left incomplete."""
    import signal

    import psutil

    from flashlab.core.platform import ComponentNotRunning
    from flashlab.lab.events import RunEvents
    from flashlab.lab.experiment import load_experiment
    from flashlab.lab.run import RunRequest
    from flashlab.lab.run import execute
    from flashlab.system import procs

    before = set(procs.started_pids())
    killed: list[int] = []

    def kill_a_worker(_progress: object) -> None:
        if killed:
            return
        for pid in procs.started_pids():
            if pid in before or not procs.is_alive(pid):
                continue
            if "uvicorn" in " ".join(psutil.Process(pid).cmdline()):
                procs.send(pid, signal.SIGKILL)
                killed.append(pid)
                return

    class KillAWorker(RunEvents):
        def progress(self, snapshot: object) -> None:
            kill_a_worker(snapshot)

    request = RunRequest(
        experiment=load_experiment(SMOKE), run_dir=tmp_path / "run", write_report=False
    )
    request.events.append(KillAWorker())
    with pytest.raises(ComponentNotRunning, match="api-"):
        execute(request)
    assert killed, "no API worker was found to kill"
    manifest = (tmp_path / "run" / "manifest.json").read_text()
    assert '"complete": false' in manifest and "died during the load without a fault" in manifest
    assert (tmp_path / "run" / "history.parquet").exists()  # the evidence so far is kept
