"""An import inside a function is there for start-up cost, and says so: `# start-up cost: ...`.

Imports belong at the top of a module, where a reader sees what it depends on. One stays in a
function body only when it keeps an expensive or optional package (pandas, matplotlib, ray,
docker, ...) out of the start-up of every process that imports the module, and then the line
right above it - or above the block of consecutive imports it opens - says what it saves, e.g.
`# start-up cost: only this path pays for matplotlib, jinja2`. A trailing comment on the import
itself counts too. Walked with `ast` over the packages test_code_shape.py walks.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("flashlab", "system", "simulator", "chaos", "analysis", "bench")
MARKER = "# start-up cost:"

# Files the walk leaves out while they are being reworked elsewhere (none today).
ELSEWHERE: frozenset[str] = frozenset()

_Import = ast.Import | ast.ImportFrom


def _blocks(statements: list[ast.stmt]) -> list[list[_Import]]:
    """Runs of consecutive import statements (one block for isort, blank lines or not)."""
    blocks: list[list[_Import]] = []
    run: list[_Import] = []
    for stmt in statements:
        if isinstance(stmt, _Import):
            run.append(stmt)
            continue
        if run:
            blocks.append(run)
        run = []
    if run:
        blocks.append(run)
    return blocks


def _statement_lists(func: ast.AST) -> list[list[ast.stmt]]:
    """Every statement list inside a function (its body, and those of its if/try/with/loops)."""
    lists = []
    for node in ast.walk(func):
        for name in ("body", "orelse", "finalbody"):
            value = getattr(node, name, None)
            if isinstance(value, list) and value and isinstance(value[0], ast.stmt):
                lists.append(value)
    return lists


def _says_why(stmt: _Import, lines: list[str], comment_above: bool) -> bool:
    own = lines[stmt.lineno - 1 : stmt.end_lineno]
    above = lines[stmt.lineno - 2].strip() if comment_above and stmt.lineno > 1 else ""
    return any(MARKER in line for line in own) or above.startswith(MARKER)


def unexplained_local_imports(root: Path = ROOT, skip: frozenset[str] = ELSEWHERE) -> list[str]:
    """`path:line statement` for every function-local import without its start-up-cost comment."""
    found: set[str] = set()
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            rel = path.relative_to(root).as_posix()
            if rel in skip:
                continue
            text = path.read_text(encoding="utf-8")
            lines = text.splitlines()
            for func in ast.walk(ast.parse(text, filename=rel)):
                if not isinstance(func, ast.FunctionDef | ast.AsyncFunctionDef):
                    continue
                for statements in _statement_lists(func):
                    for block in _blocks(statements):
                        opened = _says_why(block[0], lines, comment_above=True)
                        for stmt in block:
                            if not (opened or _says_why(stmt, lines, comment_above=False)):
                                found.add(f"{rel}:{stmt.lineno} {ast.unparse(stmt)}")
    return sorted(found, key=lambda f: (f.split(":")[0], int(f.split(":")[1].split()[0])))


def test_every_function_local_import_says_it_is_there_for_start_up_cost() -> None:
    missing = unexplained_local_imports()
    assert not missing, (
        f"function-local imports without a `{MARKER} ...` comment: move each to the top of its "
        "module, or say on the line above what importing it at start-up would cost:\n  "
        + "\n  ".join(missing)
    )


def test_the_files_left_out_are_still_the_ones_that_need_it() -> None:
    # Once a file left out above complies (or is gone), it leaves the list.
    for rel in sorted(ELSEWHERE):
        assert (ROOT / rel).exists(), f"{rel} is gone: drop it from ELSEWHERE"
        assert unexplained_local_imports(skip=ELSEWHERE - {rel}), (
            f"{rel} complies now: drop it from ELSEWHERE"
        )


def test_the_walk_finds_an_unexplained_import(tmp_path: Path) -> None:
    # The check itself can fail: of four function-local imports, only the bare one is reported.
    for package in PACKAGES:
        (tmp_path / package).mkdir()
    (tmp_path / "flashlab" / "mod.py").write_text(
        "import json\n"
        "\n"
        "\n"
        "def f():\n"
        "    # start-up cost: pandas loads only here\n"
        "    import pandas\n"
        "\n"
        "    from flashlab import x\n"
        "    import scipy  # start-up cost: scipy only for intervals\n"
        "    if pandas:\n"
        "        import numpy\n"
    )
    assert unexplained_local_imports(tmp_path, frozenset()) == ["flashlab/mod.py:11 import numpy"]
