"""The analysis notebooks: stored without outputs, parameterised papermill-style, and each one executes
on the venv's kernel against synthetic runs (stand-ins made in a temp dir, never in reports/) and
against real runs. `make notebooks` (flashlab.lab.notebooks) makes real runs and caches them;
notebook 05 reads a real sweep (tests/test_sweep.py)."""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from flashlab.analysis.notebooks import NOTEBOOKS_DIR
from flashlab.analysis.notebooks import NotebookError
from flashlab.analysis.notebooks import execute_notebook
from flashlab.analysis.notebooks import inject_parameters
from flashlab.analysis.synthetic import SyntheticSpec
from flashlab.analysis.synthetic import write_synthetic

ROOT = Path(__file__).resolve().parent.parent
EXPECTED = [
    "01-oversell",
    "02-latency-percentiles",
    "03-conflict-rates",
    "04-chaos-recovery",
    "05-race-window",
]
# The notebooks that read run directories (05 reads a sweep directory instead).
RUN_NOTEBOOKS = EXPECTED[:4]
# Run-directory names per notebook: the stand-in spec each notebook picks depends on the name.
RUN_NAMES = {
    "01-oversell": ["seed-phase1-naive", "seed-phase2-lock", "lua", "optimistic"],
    "02-latency-percentiles": ["lua", "seed-phase2-lock"],
    "03-conflict-rates": ["conflict-lock-2000", "conflict-optimistic-10000"],
    "04-chaos-recovery": ["lua-redis-kill-none", "lua-redis-kill-aof-always"],
}


def notebooks() -> list[Path]:
    return sorted(NOTEBOOKS_DIR.glob("*.ipynb"))


def parameter_names(nb: nbformat.NotebookNode) -> set[str]:
    cells = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(cells) == 1, "exactly one cell tagged `parameters`"
    tree = ast.parse(cells[0].source)
    return {
        t.id
        for node in tree.body
        if isinstance(node, ast.Assign)
        for t in node.targets
        if isinstance(t, ast.Name)
    }


def test_the_five_notebooks_exist() -> None:
    assert [p.stem for p in notebooks()] == EXPECTED


@pytest.mark.parametrize("path", notebooks(), ids=lambda p: p.stem)
def test_stored_without_outputs(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            assert cell.outputs == [], f"{path.name} cell {i} has committed outputs"
            assert cell.execution_count is None, f"{path.name} cell {i} has an execution count"
    wanted = {"SWEEP_DIR"} if path.stem == "05-race-window" else {"RUN_DIRS", "SYNTHETIC_DIR"}
    assert wanted <= parameter_names(nb)


@pytest.mark.parametrize("name", RUN_NOTEBOOKS)
def test_notebook_executes_on_stand_ins(name: str, tmp_path: Path) -> None:
    run_dirs = [str(tmp_path / "absent" / n) for n in RUN_NAMES[name]]
    synthetic = tmp_path / "synthetic"
    out_html = tmp_path / f"{name}.html"
    nb = execute_notebook(
        NOTEBOOKS_DIR / f"{name}.ipynb",
        {"RUN_DIRS": run_dirs, "SYNTHETIC_DIR": str(synthetic)},
        out_html,
    )
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert images, "every notebook draws at least one plot"
    assert sorted(p.name for p in (synthetic / name).iterdir()) == sorted(RUN_NAMES[name])
    html = out_html.read_text()
    assert "stand-in" in html
    assert not re.search(r"""(?:src|href)=["'](?:https?:)?//""", html), (
        "HTML must not fetch from the network"
    )


def test_real_run_dirs_are_used_as_given(tmp_path: Path) -> None:
    dirs = []
    for strategy in ("naive", "lua"):
        path = tmp_path / f"given-{strategy}"
        write_synthetic(
            path, SyntheticSpec(run_id=path.name, strategy=strategy, shoppers=200, stock=50)
        )
        dirs.append(str(path))
    nb = execute_notebook(
        NOTEBOOKS_DIR / "01-oversell.ipynb",
        {"RUN_DIRS": dirs, "SYNTHETIC_DIR": str(tmp_path / "synthetic")},
    )
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert "stand-in" not in text
    assert not (tmp_path / "synthetic").exists()


def test_kernel_is_this_venv_and_failures_are_one_line(tmp_path: Path) -> None:
    nb = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_code_cell("X = 1", metadata={"tags": ["parameters"]}),
            nbformat.v4.new_code_cell("import sys\nprint(sys.executable, X)"),
        ]
    )
    path = tmp_path / "probe.ipynb"
    nbformat.write(nb, path)
    done = execute_notebook(path, {"X": 42})
    assert done.cells[1].metadata["tags"] == ["injected-parameters"]
    assert done.cells[2].outputs[0]["text"].strip() == f"{sys.executable} 42"
    nb.cells.append(nbformat.v4.new_code_cell("raise ValueError('planted')"))
    nbformat.write(nb, path)
    with pytest.raises(NotebookError, match=r"probe\.ipynb: cell 2: ValueError: planted"):
        execute_notebook(path)


def test_inject_without_parameters_cell_goes_first() -> None:
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("print(1)")])
    inject_parameters(nb, {"RUN_DIRS": ["a"]})
    assert nb.cells[0].source.endswith("RUN_DIRS = ['a']")


def test_cli_bad_flag_is_one_line() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "flashlab.analysis.notebooks", "--only", "nope"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "--only" in lines[0] and "nope" in lines[0], proc.stderr


@pytest.mark.parametrize(
    "path", [NOTEBOOKS_DIR / f"{n}.ipynb" for n in RUN_NOTEBOOKS], ids=lambda p: p.stem
)
def test_notebook_executes_on_a_real_smoke_run(path: Path, smoke_run: Path, tmp_path: Path) -> None:
    """The notebooks against genuine lab output (a real smoke run), not only synthetic stand-ins."""
    done = execute_notebook(
        path, {"RUN_DIRS": [str(smoke_run)], "SYNTHETIC_DIR": str(tmp_path / "syn")}
    )
    text = "\n".join(
        str(o.get("text", ""))
        + str(o.get("data", {}).get("text/plain", ""))
        + str(o.get("data", {}).get("text/html", ""))
        for c in done.cells
        if c.cell_type == "code"
        for o in c.get("outputs", [])
    )
    assert "synthetic" not in text.lower(), "the notebook fell back to a synthetic stand-in"
    assert not (tmp_path / "syn").exists(), (
        "a real run was given, yet a synthetic stand-in was made"
    )


def test_make_notebooks_makes_real_runs_once_and_renders(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """What `make notebooks` does for one notebook, shrunk: make its runs (two real, tiny smoke runs
    on lua and lock), execute it on them, render HTML; a second pass reuses the cached runs."""
    from flashlab.lab.notebooks import NOTEBOOK_INPUTS
    from flashlab.lab.notebooks import RunSpec
    from flashlab.lab.notebooks import cache_key
    from flashlab.lab.notebooks import render

    tiny = {"scenario.shoppers": 80, "product.stock": 8, "isolation.mode": "off"}
    specs = [
        RunSpec("lua", "experiments/smoke.yaml", tiny),
        RunSpec("lock", "experiments/smoke.yaml", tiny | {"product.strategy": "lock"}),
    ]
    monkeypatch.setitem(NOTEBOOK_INPUTS, "02-latency-percentiles", {"RUN_DIRS": specs})
    runs, out = tmp_path / "runs", tmp_path / "html"
    html = render("02-latency-percentiles", runs, out, "rev-a")
    made = sorted(p.name for p in runs.iterdir())
    assert len(made) == 2 and all(
        json.loads((runs / m / "manifest.json").read_text())["complete"] for m in made
    )
    # resolve_run prints this when it falls back to a stand-in (render() also refuses that).
    assert "no complete run there" not in html.read_text()
    first = capsys.readouterr().out
    assert first.count(": made ") == 2
    render("02-latency-percentiles", runs, out, "rev-a")
    assert capsys.readouterr().out.count(": cached ") == 2
    assert sorted(p.name for p in runs.iterdir()) == made
    # Another code revision is another key: the cache does not hand it the old runs.
    assert cache_key(specs[0], "rev-b") != cache_key(specs[0], "rev-a")
