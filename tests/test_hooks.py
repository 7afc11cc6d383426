"""The commit-msg hook (scripts/hooks/commit-msg) keeps subjects to 72 characters and a blank line after."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

HOOK = Path(__file__).resolve().parents[1] / "scripts" / "hooks" / "commit-msg"


def _run(tmp_path: Path, message: str) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "COMMIT_EDITMSG"
    path.write_text(message)
    return subprocess.run([str(HOOK), str(path)], capture_output=True, text=True, timeout=30)


@pytest.mark.parametrize(
    "message",
    ["checker: a check that raises is unknown\n", "x" * 72 + "\n\nwhy\n", "# comment\nok\n"],
)
def test_a_short_subject_is_accepted(tmp_path: Path, message: str) -> None:
    assert _run(tmp_path, message).returncode == 0


def test_a_long_subject_is_refused_with_its_length(tmp_path: Path) -> None:
    done = _run(tmp_path, "y" * 73 + "\n\nbody\n")
    assert done.returncode == 1 and "73 characters" in done.stderr


def test_a_body_glued_to_the_subject_is_refused(tmp_path: Path) -> None:
    done = _run(tmp_path, "subject\nbody without a blank line\n")
    assert done.returncode == 1 and "blank line" in done.stderr
