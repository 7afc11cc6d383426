"""No import cycles in `flashlab`: not at module level, not in a function body, not under TYPE_CHECKING.

The graph is grimp's (import-linter's graph builder), built over the checkout's `flashlab/` (the
top-level folders are linked under it), as scripts/lint-imports.sh does. grimp reads every import statement of
a module, those inside functions and `if TYPE_CHECKING:` blocks included, so a cycle hidden in a
function body or a type-only import still counts. A cycle is a strongly connected component of
more than one module, or a module importing itself.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Prints {module: [modules it imports directly]} for the package named in argv[1], as grimp sees it.
_DUMP_GRAPH = """
import json, sys
import grimp
graph = grimp.build_graph(sys.argv[1], cache_dir=None, exclude_type_checking_imports=False)
print(json.dumps({m: sorted(graph.find_modules_directly_imported_by(m)) for m in graph.modules}))
"""


def import_graph(where: Path, package: str) -> dict[str, list[str]]:
    """The direct imports of every module of `package`, found under the folder `where`."""
    proc = subprocess.run(
        [sys.executable, "-c", _DUMP_GRAPH, package],
        cwd=where,
        env={**os.environ, "PYTHONPATH": str(where)},
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    return json.loads(proc.stdout)


def cycles(graph: dict[str, list[str]]) -> list[list[str]]:
    """Every strongly connected component of more than one module, and every self-import
    (Tarjan's algorithm, iterative), each sorted; the list sorted too."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(graph.get(root, ())))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, edges = work[-1]
            for nxt in edges:
                if nxt not in index:
                    index[nxt] = low[nxt] = len(index)
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(graph.get(nxt, ()))))
                    break
                if nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1 or node in graph.get(node, ()):
                        found.append(sorted(component))
    return sorted(found)


def _describe(component: list[str], graph: dict[str, list[str]]) -> str:
    inside = set(component)
    edges = [f"{a} -> {b}" for a in component for b in graph.get(a, ()) if b in inside]
    return "  " + ", ".join(component) + "\n" + "\n".join(f"      {e}" for e in edges)


def test_the_flashlab_package_has_no_import_cycle() -> None:
    graph = import_graph(ROOT, "flashlab")
    assert (
        "flashlab.system.api.app" in graph and "flashlab.lab.run" in graph
    )  # the links were walked
    found = cycles(graph)
    assert not found, (
        "import cycles (move the shared piece down to a module both import; a function-local "
        "or TYPE_CHECKING import still counts):\n" + "\n".join(_describe(c, graph) for c in found)
    )


def test_the_check_finds_hidden_and_type_only_cycles(tmp_path: Path) -> None:
    # The check itself can fail: a cycle through a function body, one through TYPE_CHECKING and
    # a self-import are each reported; an acyclic import is not.
    pkg = tmp_path / "cyc"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("import cyc.b\n")
    (pkg / "b.py").write_text("def f():\n    from cyc import a\n")
    (pkg / "c.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from cyc.d import D\n"
    )
    (pkg / "d.py").write_text("from cyc.c import C\n")
    (pkg / "e.py").write_text("def g():\n    import cyc.e\n")
    (pkg / "f.py").write_text("import cyc.a\n")
    assert cycles(import_graph(tmp_path, "cyc")) == [
        ["cyc.a", "cyc.b"],
        ["cyc.c", "cyc.d"],
        ["cyc.e"],
    ]
