"""The CLI's promises on bad input: one line naming the field or flag, exit 2, no traceback, no run dir."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from support import assert_one_line_error

ROOT = Path(__file__).resolve().parent.parent
FLASHLAB = [sys.executable, "-m", "flashlab.cli"]


def flashlab(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*FLASHLAB, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout
    )


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "exp.yaml"
    path.write_text(text)
    return path


def test_help_shows_examples() -> None:
    proc = flashlab("--help")
    assert proc.returncode == 0
    assert "Examples" in proc.stdout and "flashlab run" in proc.stdout
    for command in (
        "run",
        "check",
        "validate",
        "matrix",
        "sweep",
        "stack",
        "demo",
        "report",
        "compare",
    ):
        sub = flashlab(command, "--help")
        assert sub.returncode == 0, (command, sub.stderr)
        assert "xample" in sub.stdout, command
    # The exit codes, 3 = inconclusive among them, are documented where a user looks.
    for command in ("run", "check"):
        assert "3 inconclusive" in flashlab(command, "--help").stdout, command
    assert "3 inconclusive" in proc.stdout


def test_missing_experiment_file(tmp_path: Path) -> None:
    assert_one_line_error(flashlab("run", str(tmp_path / "nope.yaml")), "no such file")


@pytest.mark.parametrize(
    ("body", "needles"),
    [
        ("faults:\n  - {fault: no-such-fault, at_s: 1}\n", ("faults.0.fault", "unknown fault")),
        ("hypothesis: ['xyzzy < 1']\n", ("hypothesis", "unknown key 'xyzzy'", "allowed")),
        ("hypothesis: ['oversel == 0']\n", ("hypothesis", "did you mean 'oversell'")),
        (
            "faults:\n  - {fault: redis-kill, at_s: 1}\n"
            "hypothesis: ['recovery.redis-kil.time_to_recover_s < 2']\n",
            ("hypothesis", "does not schedule", "did you mean 'redis-kill'"),
        ),
        ("guards: ['p99_5s > 100']\n", ("guards", "did you mean 'p99_5s_ms'")),
        (
            "hypothesis: ['fairness.profiles.bots.unit_share < 0.4']\n",
            ("hypothesis", "names profile 'bots'", "did you mean 'bot'", "patient, impatient, bot"),
        ),
        (
            "hypothesis: ['fairness.profiles.bot.share < 0.4']\n",
            ("hypothesis", "fairness.profiles.<profile>.<metric>", "unit_share"),
        ),
        ("product: {strategy: yolo}\n", ("product.strategy", "unknown strategy 'yolo'", "lua")),
        ("scenario: {shoppers: -5}\n", ("scenario.shoppers",)),
        ("scenario: {duration_s: -1}\n", ("scenario.duration_s",)),
        ("stack: {durability: sometimes}\n", ("stack.durability", "aof-always")),
        ("bogus_field: 1\n", ("bogus_field", "unknown field")),
        ("scenario: [1, 2\n", ("not valid YAML",)),
    ],
)
def test_bad_experiment_is_one_line_and_leaves_no_run_dir(
    tmp_path: Path, body: str, needles: tuple[str, ...]
) -> None:
    out = tmp_path / "run"
    proc = flashlab("run", str(write(tmp_path, body)), "--out", str(out))
    assert_one_line_error(proc, *needles)
    assert not out.exists()


def test_negative_fault_duration_is_rejected(tmp_path: Path) -> None:
    from flashlab.chaos.faults import fault_names

    names = fault_names()
    if not names:
        pytest.fail("fault catalogue is empty")
    body = f"faults:\n  - {{fault: {names[0]}, at_s: 1, duration_s: -2}}\n"
    assert_one_line_error(flashlab("validate", str(write(tmp_path, body))), "faults.0.duration_s")


def test_bad_flags(tmp_path: Path) -> None:
    smoke = str(ROOT / "experiments" / "smoke.yaml")
    # Choices: refused by the parser, naming the flag (tests/test_cli_choices.py has them all).
    assert_one_line_error(flashlab("run", smoke, "--strategy", "yolo"), "--strategy")
    assert_one_line_error(flashlab("run", smoke, "--engine", "warp"), "--engine")
    assert_one_line_error(
        flashlab("run", smoke, "--target", "http://127.0.0.1:9"),
        "--target, --redis and --admin-token",
    )
    proc = flashlab(
        "run",
        smoke,
        "--target",
        "http://10.1.2.3:80",
        "--redis",
        "redis://127.0.0.1:1/0",
        "--admin-token",
        "x",
        "--out",
        str(tmp_path / "r"),
    )
    assert_one_line_error(proc, "--target", "not a loopback address")
    assert not (tmp_path / "r").exists()
    assert_one_line_error(flashlab("matrix", "--strategies", "lua,yolo"), "--strategies", "yolo")
    assert_one_line_error(flashlab("check", str(tmp_path / "missing")), "not a run directory")


def test_check_refuses_incomplete_run(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "manifest.json").write_text(json.dumps({"run_id": "x", "complete": False}))
    assert_one_line_error(flashlab("check", str(run)), "incomplete")


def test_every_shipped_experiment_validates() -> None:
    files = sorted(str(p) for p in (ROOT / "experiments").glob("*.yaml"))
    assert files
    proc = flashlab("validate", *files, "--json")
    assert proc.returncode == 0, proc.stderr
    assert set(json.loads(proc.stdout)) == set(files)


def test_bad_repeat_is_one_line_and_leaves_no_directory(tmp_path: Path) -> None:
    smoke = str(ROOT / "experiments" / "smoke.yaml")
    out = tmp_path / "set"
    assert_one_line_error(flashlab("run", smoke, "--repeat", "0", "--out", str(out)), "--repeat")
    assert_one_line_error(flashlab("run", smoke, "--repeat", "101", "--out", str(out)), "--repeat")
    assert not out.exists()
    body = "repeat: 0\n"
    assert_one_line_error(flashlab("run", str(write(tmp_path, body)), "--out", str(out)), "repeat")
    assert not out.exists()
    assert_one_line_error(flashlab("matrix", "--repeat", "0"), "--repeat")


def test_compare_bad_input(tmp_path: Path) -> None:
    from flashlab.testing.synthetic import SyntheticSpec
    from flashlab.testing.synthetic import write_synthetic
    from flashlab.testing.synthetic import write_synthetic_set

    write_synthetic(tmp_path / "run", SyntheticSpec())
    write_synthetic_set(tmp_path / "set", [SyntheticSpec(seed=s) for s in (1, 2)])
    run, trial_set = str(tmp_path / "run"), str(tmp_path / "set")
    assert_one_line_error(flashlab("compare", run, str(tmp_path / "nope")), "not a run directory")
    assert_one_line_error(
        flashlab("compare", run, trial_set, "--fail-if-worse", "p99,speed"),
        "--fail-if-worse",
        "speed",
    )
    (tmp_path / "set" / "trial-02" / "manifest.json").unlink()
    assert_one_line_error(flashlab("compare", run, trial_set), "trial-02")
    ok = flashlab("compare", run, run, "--fail-if-worse", "p99,oversell")
    assert ok.returncode == 0, ok.stderr
    assert "single run" in ok.stdout


def test_experiments_lists_every_shipped_file_with_its_description() -> None:
    proc = flashlab("experiments", "--json")
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(proc.stdout)
    assert [r["name"] for r in rows] == sorted(
        p.stem for p in (ROOT / "experiments").glob("*.yaml")
    )
    assert all(r["description"] for r in rows), [r["name"] for r in rows if not r["description"]]
    table = flashlab("experiments")
    assert table.returncode == 0 and "smoke" in table.stdout


def test_shipped_names_validate_and_unknown_names_suggest(tmp_path: Path) -> None:
    proc = flashlab("validate", "smoke", "lua")
    assert proc.returncode == 0, proc.stderr
    assert_one_line_error(flashlab("run", "redis-kil"), "redis-kill")
    assert_one_line_error(flashlab("run", "zzzzzz"), "flashlab experiments")


def test_missing_extra_is_one_line_before_any_run_dir(tmp_path: Path) -> None:
    # Simulate an install without the `ray` extra: its module list names one that cannot exist.
    code = (
        "import sys, flashlab.core.extras as e; e.EXTRAS['ray'] = ('flashlab_no_such_module',); "
        "from flashlab.cli import main; sys.argv = ['flashlab', *sys.argv[1:]]; main()"
    )
    out = tmp_path / "r"
    proc = subprocess.run(
        [sys.executable, "-c", code, "run", "smoke", "--engine", "ray", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert_one_line_error(proc, "engine 'ray'", "pip install 'flashlab[ray]'")
    assert not out.exists()
