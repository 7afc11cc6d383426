"""Fixed-value options are choices read from the registries: --help lists them, the shell completes
them, and the parser refuses anything else in one line naming the flag (exit 2)."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import get_args

import pytest
from support import ROOT
from support import assert_one_line_error
from support import run_flashlab

from flashlab.core.contract import Strategy
from flashlab.core.isolation import Mode
from flashlab.core.platform import Durability
from flashlab.simulator import CLIENTS
from flashlab.simulator.engines import ENGINES
from flashlab.system.platforms import PLATFORMS

# flag of `flashlab run` -> every value it must take (each from its registry or Literal)
RUN_CHOICES = {
    "--engine": list(ENGINES),
    "--strategy": [s.value for s in Strategy],
    "--platform": list(PLATFORMS),
    "--durability": list(get_args(Durability)),
    "--client": list(CLIENTS),
    "--isolation": list(get_args(Mode)),
}
WIDE = {**os.environ, "COLUMNS": "400"}  # one line per option: no wrapped `<a|b|c>`


def _option_line(help_text: str, flag: str) -> str:
    lines = [line for line in help_text.splitlines() if line.lstrip("│ ").startswith(f"{flag} ")]
    assert len(lines) == 1, (flag, lines)
    return lines[0]


def test_run_help_lists_every_registered_value() -> None:
    proc = run_flashlab("run", "--help", timeout=60, env=WIDE)
    assert proc.returncode == 0, proc.stderr
    for flag, values in RUN_CHOICES.items():
        assert values, flag  # an empty registry would make this test vacuous
        assert f"<{'|'.join(values)}>" in _option_line(proc.stdout, flag), flag


@pytest.mark.parametrize("flag", sorted(RUN_CHOICES))
def test_a_wrong_value_is_refused_by_the_parser_naming_the_flag(flag: str) -> None:
    # Refused before the experiment is read: the file need not exist.
    proc = run_flashlab("run", "no-such-experiment.yaml", flag, "warp-9", timeout=60, env=WIDE)
    line = assert_one_line_error(proc, f"'{flag}'", "'warp-9' is not one of")
    assert "Value error" not in line
    for value in RUN_CHOICES[flag]:
        assert f"'{value}'" in line, (flag, value)


@pytest.mark.parametrize(
    ("argv", "values"),
    [
        (("stack", "up", "--platform"), list(PLATFORMS)),
        (("stack", "up", "--durability"), list(get_args(Durability))),
        (("run", "smoke", "--engine"), list(ENGINES)),
        (("run", "smoke", "--client"), list(CLIENTS)),
    ],
)
def test_the_shell_completes_the_registered_values(
    argv: tuple[str, ...], values: list[str]
) -> None:
    env = WIDE | {
        "_FLASHLAB_COMPLETE": "complete_bash",
        "COMP_WORDS": " ".join(("flashlab", *argv, "")),
        "COMP_CWORD": str(len(argv) + 1),
    }
    # The console script's name is what completion keys on (`_FLASHLAB_COMPLETE`).
    entry = "import sys; sys.argv[0] = 'flashlab'; from flashlab.cli import main; main()"
    proc = subprocess.run(
        [sys.executable, "-c", entry], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == values


def test_other_fixed_value_arguments_are_choices_too() -> None:
    from flashlab.bench import BENCHMARKS

    proc = run_flashlab("bench", "nope", timeout=60, env=WIDE)
    line = assert_one_line_error(proc, "'nope' is not one of")
    assert all(f"'{name}'" in line for name in [*BENCHMARKS, "all"]), line
    assert_one_line_error(run_flashlab("bench", "all", "--size", "huge", timeout=60), "'--size'")
    assert_one_line_error(run_flashlab("schema", "nope", timeout=60), "'experiment'", "'target'")
    assert_one_line_error(
        run_flashlab("stack", "up", "--platform", "k8s", timeout=60), "--platform"
    )
