"""The analysis notebooks: stored without outputs, executed with papermill on the venv's kernel, and
never silently on synthetic data.

Opened with their defaults, the notebooks read the newest complete runs `make notebooks` cached
(flashlab.analysis.notebook_runs); with none, the first cell shows a banner with the command and
stops before any figure. Synthetic stand-ins only when asked for (FLASHLAB_SYNTHETIC=1 or
SYNTHETIC=True), and then every figure's title says SYNTHETIC. Real runs here are small smoke
runs (the `smoke_run` fixture); notebook 05 on a real sweep is tests/test_sweep.py's.
"""

from __future__ import annotations

import ast
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import nbformat
import pytest

from flashlab.analysis import notebook_runs
from flashlab.analysis.notebooks import NOTEBOOKS_DIR
from flashlab.analysis.notebooks import NotebookError
from flashlab.analysis.notebooks import execute_notebook
from flashlab.analysis.notebooks import parameter_value
from flashlab.testing.synthetic import SyntheticSpec
from flashlab.testing.synthetic import write_synthetic

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
RUN_PARAMETERS = {"RUNS", "RUN_DIRS", "SYNTHETIC", "SYNTHETIC_DIR", "RUNS_CACHE"}
SWEEP_PARAMETERS = {"SWEEP", "SWEEP_DIR", "SYNTHETIC", "RUNS_CACHE"}


def notebooks() -> list[Path]:
    return sorted(NOTEBOOKS_DIR.glob("*.ipynb"))


def parameters(nb: nbformat.NotebookNode) -> dict[str, Any]:
    """The `parameters` cell's assignments, evaluated (they are literals)."""
    cells = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(cells) == 1, "exactly one cell tagged `parameters`"
    tree = ast.parse(cells[0].source)
    return {
        t.id: ast.literal_eval(node.value)
        for node in tree.body
        if isinstance(node, ast.Assign)
        for t in node.targets
        if isinstance(t, ast.Name)
    }


def outputs(nb: nbformat.NotebookNode) -> list[Any]:
    return [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]


def text_of(nb: nbformat.NotebookNode) -> str:
    """Every output as text: streams, plain-text twins of displays (banners, tables, figures)."""
    return "\n".join(
        str(o.get("text", "")) + str(o.get("data", {}).get("text/plain", "")) for o in outputs(nb)
    )


def figures(nb: nbformat.NotebookNode) -> list[str]:
    """The plain-text twin of every figure the notebook displayed (it names the titles when stamped)."""
    return [
        str(o["data"].get("text/plain", ""))
        for o in outputs(nb)
        if "image/png" in o.get("data", {})
    ]


def checkout(tmp_path: Path, *stems: str) -> Path:
    """A throwaway checkout (pyproject.toml, notebooks/) so a notebook's defaults resolve inside it."""
    root = tmp_path / "checkout"
    (root / "notebooks").mkdir(parents=True)
    (root / "pyproject.toml").write_text("")
    for stem in stems:
        shutil.copy(NOTEBOOKS_DIR / f"{stem}.ipynb", root / "notebooks")
    return root


# --- stored form --------------------------------------------------------------------------------


def test_the_five_notebooks_exist() -> None:
    assert [p.stem for p in notebooks()] == EXPECTED


@pytest.mark.parametrize("path", notebooks(), ids=lambda p: p.stem)
def test_stored_without_outputs(path: Path) -> None:
    """Outputs stay out of git: a notebook saved from Jupyter or papermill with outputs fails here."""
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    assert "papermill" not in nb.metadata, f"{path.name} is a papermill output, not a notebook"
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            assert cell.outputs == [], f"{path.name} cell {i} has committed outputs"
            assert cell.execution_count is None, f"{path.name} cell {i} has an execution count"
        assert "papermill" not in cell.metadata, f"{path.name} cell {i} has papermill metadata"
        assert "injected-parameters" not in cell.metadata.get("tags", []), path.name
    wanted = SWEEP_PARAMETERS if path.stem == "05-race-window" else RUN_PARAMETERS
    assert wanted <= set(parameters(nb))


@pytest.mark.parametrize("path", notebooks(), ids=lambda p: p.stem)
def test_defaults_name_what_make_notebooks_makes(path: Path) -> None:
    """The default spec names are the ones `make notebooks` caches (flashlab.lab.notebooks)."""
    from flashlab.lab.notebooks import NOTEBOOK_INPUTS

    params = parameters(nbformat.read(path, as_version=4))
    inputs = NOTEBOOK_INPUTS[path.stem]
    if "SWEEP_DIR" in inputs:
        assert params["SWEEP"] == inputs["SWEEP_DIR"].name and params["SWEEP_DIR"] == ""
    else:
        assert params["RUNS"] == [spec.name for spec in inputs["RUN_DIRS"]]
        assert params["RUN_DIRS"] == []
    assert params["SYNTHETIC"] is None  # FLASHLAB_SYNTHETIC decides; unset means real runs
    assert params["RUNS_CACHE"] == str(notebook_runs.CACHE)


# --- the resolver -------------------------------------------------------------------------------


def _cached(cache: Path, name: str, finished: str, complete: bool = True, **extra: Any) -> Path:
    path = cache / name
    write_synthetic(path, SyntheticSpec(run_id=name, shoppers=40, stock=10))
    manifest = json.loads((path / "manifest.json").read_text())
    manifest.update(finished_at=finished, complete=complete, synthetic=False, **extra)
    (path / "manifest.json").write_text(json.dumps(manifest))
    return path


def test_resolver_picks_the_newest_complete_run_of_the_spec(tmp_path: Path) -> None:
    cache = tmp_path / "notebook-runs"
    old = _cached(cache, "lua-aaaaaaaaaaaa", "2026-01-01T00:00:00+00:00")
    notebook_runs.write_sidecar(old, "lua", "rev-old", "aaaaaaaaaaaa")
    commit = "c" * 40
    new = _cached(
        cache,
        "lua-bbbbbbbbbbbb",
        "2026-03-01T00:00:00+00:00",
        git_revision={"commit": commit, "dirty": True},
    )
    # Newer, but interrupted: never picked.
    _cached(cache, "lua-cccccccccccc", "2026-05-01T00:00:00+00:00", complete=False)
    # Newer and complete, but another spec whose name starts with "lua-".
    other = _cached(cache, "lua-redis-kill-none-dddddddddddd", "2026-06-01T00:00:00+00:00")
    # Not a cache key: a directory someone copied by hand.
    _cached(cache, "lua-backup", "2026-07-01T00:00:00+00:00")
    sweep = cache / "race-window-eeeeeeeeeeee"
    sweep.mkdir()
    (sweep / "sweep.json").write_text(json.dumps({"complete": True, "finished_at": "2026-02-02"}))

    assert [r.path for r in notebook_runs.candidates("lua", cache)] == [old, new]
    found = notebook_runs.newest("lua", cache)
    assert found is not None and found.path == new
    assert found.revision == commit + "+dirty"  # no sidecar: the manifest's git revision
    assert notebook_runs.candidates("lua", cache)[0].revision == "rev-old"  # the sidecar's
    assert notebook_runs.newest("lua-redis-kill-none", cache).path == other  # type: ignore[union-attr]
    assert notebook_runs.newest("race-window", cache).path == sweep  # type: ignore[union-attr]
    assert notebook_runs.newest("optimistic", cache) is None
    assert notebook_runs.newest("lua", tmp_path / "no-such-cache") is None


# --- no cached runs: a banner, and nothing drawn ------------------------------------------------


@pytest.mark.parametrize("stem", EXPECTED)
def test_no_cached_runs_shows_the_banner_and_draws_nothing(
    stem: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Opened with its defaults (no parameter at all) in a checkout without cached runs and without
    FLASHLAB_SYNTHETIC: the first cell shows the banner with `make notebooks` and stops."""
    monkeypatch.delenv("FLASHLAB_SYNTHETIC", raising=False)
    root = checkout(tmp_path, stem)
    html = tmp_path / f"{stem}.html"
    with pytest.raises(NotebookError, match=r"cell \d+: NoRuns: no cached run for") as failed:
        execute_notebook(root / "notebooks" / f"{stem}.ipynb", out_html=html, cwd=root)
    nb = failed.value.notebook
    assert nb is not None
    banners = [
        o["data"]["text/html"]
        for o in outputs(nb)
        if "flashlab-banner" in o.get("data", {}).get("text/html", "")
    ]
    assert len(banners) == 1 and "No cached runs" in banners[0]
    assert "make notebooks" in banners[0] and f"--only {stem}" in banners[0]
    assert figures(nb) == [], "no figure may be drawn when there is nothing real to read"
    assert not (root / "reports" / "synthetic").exists(), "a stand-in was made unasked"
    assert "No cached runs" in html.read_text()  # the rendered page shows the banner too


def test_run_dirs_that_are_not_runs_are_refused(tmp_path: Path) -> None:
    missing = tmp_path / "absent"
    with pytest.raises(NotebookError, match="NoRuns: not a complete run") as failed:
        execute_notebook(
            NOTEBOOKS_DIR / "02-latency-percentiles.ipynb",
            {"RUN_DIRS": [str(missing)], "SYNTHETIC_DIR": str(tmp_path / "syn")},
        )
    assert f"NOT A COMPLETE RUN: {missing}" in text_of(failed.value.notebook)
    assert figures(failed.value.notebook) == []
    assert not (tmp_path / "syn").exists()


# --- synthetic only when asked, and then every figure says so -----------------------------------


@pytest.mark.parametrize("stem", RUN_NOTEBOOKS)
def test_synthetic_when_asked_marks_every_figure(
    stem: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLASHLAB_SYNTHETIC", "1")
    root = checkout(tmp_path, stem)
    html = tmp_path / f"{stem}.html"
    nb = execute_notebook(root / "notebooks" / f"{stem}.ipynb", out_html=html, cwd=root)
    assert not [o for o in outputs(nb) if o.output_type == "error"]
    drawn = figures(nb)
    assert drawn, "every notebook draws at least one plot"
    assert all("SYNTHETIC" in title for title in drawn), drawn
    assert "SYNTHETIC stand-ins (not measurements)" in text_of(nb)
    made = sorted(p.name for p in (root / "reports" / "synthetic" / stem).iterdir())
    assert made == sorted(parameters(nb)["RUNS"])
    page = html.read_text()
    assert "SYNTHETIC" in page
    assert not re.search(r"""(?:src|href)=["'](?:https?:)?//""", page), (
        "HTML must not fetch from the network"
    )


def test_05_has_no_synthetic_sweep(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLASHLAB_SYNTHETIC", "1")
    root = checkout(tmp_path, "05-race-window")
    with pytest.raises(NotebookError, match="NoRuns") as failed:
        execute_notebook(root / "notebooks" / "05-race-window.ipynb", cwd=root)
    text = text_of(failed.value.notebook)
    assert "no SYNTHETIC stand-in for a sweep" in text and "NO CACHED RUNS" in text
    assert figures(failed.value.notebook) == []


def test_a_stand_in_given_as_a_run_is_still_marked(tmp_path: Path) -> None:
    dirs = []
    for strategy in ("naive", "lua"):
        path = tmp_path / f"given-{strategy}"
        write_synthetic(
            path, SyntheticSpec(run_id=path.name, strategy=strategy, shoppers=200, stock=50)
        )
        dirs.append(str(path))
    nb = execute_notebook(
        NOTEBOOKS_DIR / "01-oversell.ipynb", {"RUN_DIRS": dirs, "SYNTHETIC": False}
    )
    drawn = figures(nb)
    assert drawn and all("SYNTHETIC" in title for title in drawn), drawn
    assert "SYNTHETIC stand-ins among the runs: given-naive, given-lua" in text_of(nb)


# --- real runs ----------------------------------------------------------------------------------


@pytest.mark.parametrize("stem", RUN_NOTEBOOKS)
def test_notebook_executes_on_a_real_smoke_run(stem: str, smoke_run: Path, tmp_path: Path) -> None:
    """The notebooks against genuine lab output (a real smoke run), not only synthetic stand-ins."""
    done = execute_notebook(
        NOTEBOOKS_DIR / f"{stem}.ipynb",
        {"RUN_DIRS": [str(smoke_run)], "SYNTHETIC_DIR": str(tmp_path / "syn")},
    )
    text = text_of(done)
    assert "RUN_DIRS as given" in text and smoke_run.name in text
    assert "synthetic" not in text.lower(), "the notebook fell back to a synthetic stand-in"
    assert figures(done) and not [f for f in figures(done) if "SYNTHETIC" in f]
    assert not (tmp_path / "syn").exists(), "a real run was given, yet a stand-in was made"


def _copy_run(smoke_run: Path, cache: Path, name: str, finished: str, **manifest: Any) -> Path:
    path = cache / name
    shutil.copytree(smoke_run, path)
    data = json.loads((path / "manifest.json").read_text())
    data.update(finished_at=finished, **manifest)
    (path / "manifest.json").write_text(json.dumps(data))
    return path


def test_defaults_read_the_newest_complete_cached_runs(
    smoke_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Notebook 02 opened with no parameter at all, in a checkout whose cache holds two complete
    `lua` runs (two revisions) and a newer interrupted one: it reads the newest complete one and
    says which revision made it."""
    monkeypatch.delenv("FLASHLAB_SYNTHETIC", raising=False)
    root = checkout(tmp_path, "02-latency-percentiles")
    cache = root / notebook_runs.CACHE
    old = _copy_run(smoke_run, cache, "lua-111111111111", "2026-01-01T00:00:00+00:00")
    new = _copy_run(smoke_run, cache, "lua-222222222222", "2026-02-01T00:00:00+00:00")
    _copy_run(smoke_run, cache, "lua-333333333333", "2026-03-01T00:00:00+00:00", complete=False)
    lock = _copy_run(smoke_run, cache, "seed-phase2-lock-444444444444", "2026-01-05T00:00:00+00:00")
    notebook_runs.write_sidecar(old, "lua", "rev-old", "111111111111")
    notebook_runs.write_sidecar(new, "lua", "rev-new", "222222222222")
    notebook_runs.write_sidecar(lock, "seed-phase2-lock", "rev-lock", "444444444444")
    done = execute_notebook(root / "notebooks" / "02-latency-percentiles.ipynb", cwd=root)
    text = text_of(done)
    shown = next(line for line in text.splitlines() if line.startswith("lua: "))
    assert "lua-222222222222" in shown and "revision rev-new" in shown
    assert "lua-111111111111" not in text and "lua-333333333333" not in text
    assert "seed-phase2-lock-444444444444" in text and "revision rev-lock" in text
    assert "synthetic" not in text.lower()
    assert figures(done) and not [f for f in figures(done) if "SYNTHETIC" in f]


# --- papermill: the parameters cell, -p from the command line -----------------------------------


def test_papermill_cli_p_overrides(smoke_run: Path, tmp_path: Path) -> None:
    """`papermill NB OUT -p NAME VALUE`, as a researcher types it (list parameters comma-separated)."""
    notebook = NOTEBOOKS_DIR / "02-latency-percentiles.ipynb"

    def papermill(out: Path, *params: str) -> nbformat.NotebookNode:
        argv = [sys.executable, "-m", "papermill", str(notebook), str(out), "--cwd", str(ROOT)]
        proc = subprocess.run(
            [*argv, "--no-progress-bar", *params], capture_output=True, text=True, timeout=300
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        return nbformat.read(out, as_version=4)

    given = papermill(tmp_path / "given.ipynb", "-p", "RUN_DIRS", f"{smoke_run},{smoke_run}")
    injected = [c for c in given.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert len(injected) == 1 and f'RUN_DIRS = "{smoke_run},{smoke_run}"' in injected[0].source
    assert "RUN_DIRS as given" in text_of(given)
    assert not [f for f in figures(given) if "SYNTHETIC" in f]

    syn_dir = tmp_path / "syn"
    synthetic = papermill(
        tmp_path / "synthetic.ipynb", "-p", "SYNTHETIC", "True", "-p", "SYNTHETIC_DIR", str(syn_dir)
    )
    drawn = figures(synthetic)
    assert drawn and all("SYNTHETIC" in title for title in drawn), drawn
    assert sorted(p.name for p in (syn_dir / "02-latency-percentiles").iterdir()) == [
        "lua",
        "seed-phase2-lock",
    ]


@pytest.mark.parametrize("text", ["True", "False", "None", "3", "-2", "0.5", "1e3", "a,b", "x"])
def test_cli_p_is_typed_like_papermills(text: str) -> None:
    from papermill.cli import _resolve_type  # private: this test notices if papermill changes

    assert parameter_value(text) == _resolve_type(text)
    assert type(parameter_value(text)) is type(_resolve_type(text))


def test_kernel_is_this_venv_and_failures_are_one_line(tmp_path: Path) -> None:
    nb = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_code_cell("X = 1", metadata={"tags": ["parameters"]}),
            nbformat.v4.new_code_cell("import sys\nprint(sys.executable, X)"),
        ],
        metadata={"kernelspec": {"name": "python3", "language": "python", "display_name": "P"}},
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


@pytest.mark.parametrize(
    ("argv", "needle"), [(["--only", "nope"], "nope"), (["-p", "not-a-name", "1"], "not-a-name")]
)
def test_cli_bad_flag_is_one_line(argv: list[str], needle: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "flashlab.analysis.notebooks", *argv],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and argv[0] in lines[0] and needle in lines[0], proc.stderr


# --- make notebooks -----------------------------------------------------------------------------


def test_make_notebooks_makes_real_runs_once_and_renders(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """What `make notebooks` does for one notebook, shrunk: make its runs (two real, tiny smoke runs
    on lua and lock), execute it on them, render HTML; a second pass reuses the cached runs; then
    the notebook opened by hand (defaults) finds them and names their revision."""
    from flashlab.lab.notebooks import NOTEBOOK_INPUTS
    from flashlab.lab.notebooks import RunSpec
    from flashlab.lab.notebooks import cache_key
    from flashlab.lab.notebooks import render

    monkeypatch.setenv("FLASHLAB_SYNTHETIC", "1")  # make notebooks never uses stand-ins anyway
    tiny = {"scenario.shoppers": 80, "product.stock": 8, "isolation.mode": "off"}
    specs = [
        RunSpec("lua", "experiments/smoke.yaml", tiny),
        RunSpec("seed-phase2-lock", "experiments/smoke.yaml", tiny | {"product.strategy": "lock"}),
    ]
    monkeypatch.setitem(NOTEBOOK_INPUTS, "02-latency-percentiles", {"RUN_DIRS": specs})
    runs, out = tmp_path / "runs", tmp_path / "html"
    html = render("02-latency-percentiles", runs, out, "rev-a")
    made = sorted(p.name for p in runs.iterdir())
    assert len(made) == 2 and all(notebook_runs.is_complete(runs / m) for m in made)
    for name in made:
        sidecar = json.loads((runs / name / notebook_runs.SIDECAR).read_text())
        assert sidecar["revision"] == "rev-a" and name == f"{sidecar['spec']}-{sidecar['key']}"
    page = html.read_text()
    assert "RUN_DIRS as given" in page and "SYNTHETIC: stand-in data" not in page
    first = capsys.readouterr().out
    assert first.count(": made ") == 2
    render("02-latency-percentiles", runs, out, "rev-a")
    assert capsys.readouterr().out.count(": cached ") == 2
    assert sorted(p.name for p in runs.iterdir()) == made
    # Another code revision is another key: the cache does not hand it the old runs.
    assert cache_key(specs[0], "rev-b") != cache_key(specs[0], "rev-a")

    monkeypatch.delenv("FLASHLAB_SYNTHETIC")
    opened = execute_notebook(
        NOTEBOOKS_DIR / "02-latency-percentiles.ipynb", {"RUNS_CACHE": str(runs)}
    )
    text = text_of(opened)
    for name in made:
        assert f"{name} (revision rev-a" in text
