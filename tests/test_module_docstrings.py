"""Every module says its one job on the first line of its docstring.

Walked with `ast` over the packages test_code_shape.py walks: each module (package `__init__.py`
files included) needs a module docstring whose first line is not empty and stands alone (the
docstring ends there or a blank line follows, as PEP 257's summary line), so `head -1` of any
file tells a reader what it is for.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("flashlab", "system", "simulator", "chaos", "analysis", "bench")

# Files the walk leaves out while they are being reworked elsewhere (none today).
ELSEWHERE: frozenset[str] = frozenset()


def modules_without_a_job_line(root: Path = ROOT, skip: frozenset[str] = ELSEWHERE) -> list[str]:
    """`path: why` for every module without a docstring, or whose first line is empty or runs on."""
    found = []
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            rel = path.relative_to(root).as_posix()
            if rel in skip:
                continue
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=rel)
            doc = ast.get_docstring(tree, clean=False)  # raw: cleaning drops leading blank lines
            if doc is None:
                found.append(f"{rel}: no module docstring")
            elif not doc.split("\n", 1)[0].strip():
                found.append(f"{rel}: the docstring's first line is empty")
            elif len(lines := doc.split("\n")) > 1 and lines[1].strip():
                found.append(f"{rel}: the docstring's first line runs on into the second")
    return found


def test_every_module_says_its_job_on_its_first_docstring_line() -> None:
    missing = modules_without_a_job_line()
    assert not missing, (
        "modules whose docstring does not open with their one job (one line: what it is for):\n  "
        + "\n  ".join(missing)
    )


def test_the_walk_finds_a_module_without_a_job_line(tmp_path: Path) -> None:
    # The check itself can fail: no docstring, an empty first line, a first line that runs on.
    for package in PACKAGES:
        (tmp_path / package).mkdir()
    (tmp_path / "flashlab" / "good.py").write_text('"""Parses guards."""\n')
    (tmp_path / "flashlab" / "none.py").write_text("x = 1\n")
    (tmp_path / "flashlab" / "long.py").write_text('"""Parses guards.\n\nThe grammar."""\n')
    (tmp_path / "system" / "blank.py").write_text('"""\nParses guards.\n"""\n')
    (tmp_path / "system" / "wraps.py").write_text('"""Parses guards and\nevaluates them."""\n')
    assert modules_without_a_job_line(tmp_path) == [
        "flashlab/none.py: no module docstring",
        "system/blank.py: the docstring's first line is empty",
        "system/wraps.py: the docstring's first line runs on into the second",
    ]
