"""Code shape: no function outside tests is longer than MAX_FUNCTION_LINES (60: one screen)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("flashlab", "system", "simulator", "chaos", "analysis", "bench")
MAX_FUNCTION_LINES = 60


def long_functions(root: Path = ROOT, limit: int = MAX_FUNCTION_LINES) -> list[str]:
    """`path:line name (N lines)` for every function or method longer than `limit` lines,
    counted from its `def` (decorators excluded) to its last line, docstring included."""
    found = []
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
            for node in ast.walk(tree):
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                    length = (node.end_lineno or node.lineno) - node.lineno + 1
                    if length > limit:
                        rel = path.relative_to(root)
                        found.append(f"{rel}:{node.lineno} {node.name} ({length} lines)")
    return found


def test_no_function_exceeds_the_limit() -> None:
    too_long = long_functions()
    assert not too_long, (
        f"functions longer than {MAX_FUNCTION_LINES} lines (split them):\n  "
        + "\n  ".join(too_long)
    )


def test_the_walk_finds_a_long_function(tmp_path: Path) -> None:
    # The check itself can fail: a 61-line function in a scanned package is reported.
    pkg = tmp_path / "flashlab"
    pkg.mkdir()
    body = "\n".join(f"    x{i} = {i}" for i in range(60))
    (pkg / "long.py").write_text(f"def too_long() -> None:\n{body}\n")
    for other in PACKAGES[1:]:
        (tmp_path / other).mkdir()
    assert long_functions(tmp_path) == ["flashlab/long.py:1 too_long (61 lines)"]
