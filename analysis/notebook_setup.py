"""What a notebook's first cell does: pick its runs (cached, given, or synthetic when asked) and show which.

A notebook calls `open_runs(RUNS, ...)` (or `open_sweep(SWEEP, ...)`) with its parameters:

- by default, each spec name resolves to the newest complete run `make notebooks` cached
  (flashlab.analysis.notebook_runs), whatever revision made it; a table says which directory and
  which revision, and flags a revision other than this checkout's;
- `RUN_DIRS` (a list, or comma-separated as `papermill -p RUN_DIRS a,b` passes it) reads those
  directories instead; one that is not a complete run is refused;
- nothing found: a red banner (HTML, not a log line) names what is missing and the exact command
  (`make notebooks`), then `NoRuns` stops the notebook, so no figure is drawn from anything else;
- synthetic stand-ins (flashlab.testing.synthetic) only when asked for: `SYNTHETIC = True` or
  `FLASHLAB_SYNTHETIC=1`. Then a banner says so and every figure the notebook displays gets
  "SYNTHETIC" in its title (a display formatter stamps it, whoever drew the figure).
"""

from __future__ import annotations

import html
import os
import shutil
from collections.abc import Callable
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from flashlab.analysis.notebook_runs import CACHE
from flashlab.analysis.notebook_runs import CachedRun
from flashlab.analysis.notebook_runs import newest
from flashlab.analysis.notebook_runs import read
from flashlab.core.errors import UserError
from flashlab.core.provenance import checkout_root
from flashlab.core.provenance import git_revision

ENV = "FLASHLAB_SYNTHETIC"
MAKE_COMMAND = "make notebooks"
STAMP = "SYNTHETIC"
SYNTHETIC_TITLE = "SYNTHETIC stand-in data: an illustration, not a measurement"
_RED = "border:2px solid #c62828;background:#ffebee;color:#212121"
_AMBER = "border:2px solid #ef6c00;background:#fff3e0;color:#212121"
_GREY = "border:1px solid #90a4ae;background:#f5f7f8;color:#212121"

StandIn = Callable[[str], dict[str, Any]]


class NoRuns(UserError, RuntimeError):
    """The notebook has nothing real to read: the banner above says what is missing and how to make it."""

    def _render_traceback_(self) -> list[str]:  # IPython: one line under the banner, no traceback
        return [f"NoRuns: {self}"]


# --- parameters ---------------------------------------------------------------------------------


def synthetic_requested(parameter: bool | str | None) -> bool:
    """The notebook's SYNTHETIC parameter when set, else the FLASHLAB_SYNTHETIC environment variable."""
    value = os.environ.get(ENV, "") if parameter is None else parameter
    if isinstance(value, str):
        return value.strip().lower() in {"1", "true", "yes", "on"}
    return bool(value)


def as_list(value: str | Sequence[str] | None) -> list[str]:
    """A list parameter, or a comma-separated string (what `papermill -p NAME a,b` passes)."""
    if value is None:
        return []
    items = value.split(",") if isinstance(value, str) else [str(v) for v in value]
    return [item.strip() for item in items if item.strip()]


def repo_root() -> Path:
    """The checkout the notebook belongs to, wherever Jupyter was started (relative paths start here)."""
    here = Path.cwd()
    for path in [here, *here.parents]:
        if (path / "pyproject.toml").is_file() and (path / "notebooks").is_dir():
            return path
    return checkout_root() or here


# --- display ------------------------------------------------------------------------------------


def show(html_text: str, plain: str) -> None:
    """An HTML block (what Jupyter and the rendered page show) with its plain-text twin."""
    # start-up cost: only a notebook pays for IPython
    from IPython.display import display

    display({"text/html": html_text, "text/plain": plain}, raw=True)


def banner(title: str, body: str, style: str = _RED) -> str:
    return (
        f'<div class="flashlab-banner" style="{style};padding:12px 16px;border-radius:6px;'
        f'margin:6px 0;font-size:1.05em"><strong>{title}</strong><div>{body}</div></div>'
    )


def _code(text: str) -> str:
    return f"<code>{html.escape(text)}</code>"


def _pre(text: str) -> str:
    return f'<pre style="margin:6px 0;padding:6px 10px;background:#fff">{html.escape(text)}</pre>'


def _synthetic_hint() -> str:
    return (
        f"To look at the notebook on synthetic stand-ins instead (illustrations, not "
        f"measurements): {_code(f'{ENV}=1')} in Jupyter's environment, or {_code('SYNTHETIC = True')} "
        f"in the parameters cell ({_code('papermill ... -p SYNTHETIC True')})."
    )


def show_missing(missing: Sequence[str], cache: Path, root: Path, notebook: str) -> None:
    """The red 'no cached runs' banner: what is missing, and the exact command that makes it."""
    only = f".venv/bin/python -m flashlab.lab.notebooks --only {notebook}" if notebook else ""
    commands = MAKE_COMMAND + (f"\n# or only this notebook's runs:\n{only}" if only else "")
    body = (
        f"<p>This notebook reads the runs {_code(MAKE_COMMAND)} makes and caches under "
        f"{_code(str(cache))}, and there is no complete one for: "
        f"{', '.join(_code(name) for name in missing)}.</p>"
        f"<p>Make them (a few minutes; later calls reuse them), in {_code(str(root))}:</p>"
        f"{_pre(commands)}<p>then run this notebook again. {_synthetic_hint()}</p>"
    )
    show(
        banner("No cached runs: nothing real to analyse yet.", body),
        f"NO CACHED RUNS for {', '.join(missing)} under {cache}.\n"
        f"Make them with `{MAKE_COMMAND}` in {root}"
        + (f" (or `{only}`)" if only else "")
        + f", then run this notebook again. Synthetic stand-ins only with {ENV}=1 or SYNTHETIC=True.",
    )


def show_incomplete(bad: Sequence[Path]) -> None:
    body = (
        f"<p>RUN_DIRS names {', '.join(_code(str(p)) for p in bad)}: not a complete run "
        f"(no manifest with {_code('complete: true')}). Give complete run directories, or leave "
        f"RUN_DIRS empty to read the runs {_code(MAKE_COMMAND)} cached.</p>"
    )
    show(
        banner("Not a complete run.", body),
        f"NOT A COMPLETE RUN: {', '.join(map(str, bad))}",
    )


def _commit(revision: str) -> str:
    return revision.partition("+")[0]


def show_runs(runs: Sequence[CachedRun], root: Path, source: str) -> None:
    """Which directory each spec resolved to and which code revision made it."""
    head = git_revision(root).get("commit") or "unknown"
    rows, lines = [], []
    for run in runs:
        where = run.path.relative_to(root) if run.path.is_relative_to(root) else run.path
        other = _commit(run.revision) != head
        note = " (not this checkout's commit)" if other else ""
        note += f" ({STAMP} stand-in)" if run.synthetic else ""
        rows.append(
            f"<tr><td>{_code(run.name)}</td><td>{_code(str(where))}</td>"
            f"<td>{html.escape(run.short_revision)}{html.escape(note)}</td>"
            f"<td>{html.escape(run.finished_at[:19].replace('T', ' '))} UTC</td></tr>"
        )
        lines.append(f"{run.name}: {where} (revision {run.short_revision}{note})")
    table = (
        '<table><tr><th align="left">spec</th><th align="left">run directory</th>'
        '<th align="left">made by revision</th><th align="left">finished</th></tr>'
        + "".join(rows)
        + "</table>"
    )
    body = f"<p>{html.escape(source)}; this checkout is at {_code(head[:10])}.</p>{table}"
    show(
        banner("Real runs", body, _GREY),
        f"Real runs ({source}; this checkout: {head[:10]}):\n" + "\n".join(lines),
    )


# --- synthetic stand-ins ------------------------------------------------------------------------


def _stamp(fig: Any) -> Any:
    """Put SYNTHETIC in the figure's title (its suptitle), once."""
    if getattr(fig, "_flashlab_synthetic", False):
        return fig
    current = fig._suptitle.get_text() if fig._suptitle is not None else ""
    title = f"{SYNTHETIC_TITLE} · {current}" if current else SYNTHETIC_TITLE
    fig.suptitle(title, color="#c62828", fontweight="bold", fontsize=11)
    fig._flashlab_synthetic = True
    return fig


def figure_titles(fig: Any) -> list[str]:
    """The figure's suptitle and every axes title, in order (empty ones left out)."""
    titles = [fig._suptitle.get_text()] if fig._suptitle is not None else []
    for ax in fig.get_axes():
        titles += [ax.get_title(loc=loc) for loc in ("left", "center", "right")]
    return [t for t in titles if t]


_ORIGINAL_PRINTERS: dict[str, Any] = {}  # mime -> the Figure printer before we stamped


def _printers() -> dict[str, Any]:
    def png(fig: Any) -> Any:
        original = _ORIGINAL_PRINTERS.get("image/png")
        if original is None:
            # start-up cost: only a notebook that shows a figure pays for the plots module
            from flashlab.analysis.plots import png_bytes

            original = png_bytes
        return original(_stamp(fig))

    def plain(fig: Any, p: Any, cycle: bool) -> None:
        p.text(f"<Figure: {' | '.join(figure_titles(_stamp(fig))) or 'untitled'}>")

    return {"image/png": png, "text/plain": plain}


def mark_synthetic_figures(on: bool = True) -> None:
    """Stamp every figure IPython displays from now on (its png and its text twin); off restores."""
    # start-up cost: only a notebook pays for IPython and matplotlib
    from IPython import get_ipython
    from matplotlib.figure import Figure

    shell = get_ipython()
    if shell is None:
        return
    formatters = shell.display_formatter.formatters
    for mime, printer in _printers().items():
        fmt = formatters[mime]
        current = fmt.type_printers.get(Figure)
        if not getattr(current, "_flashlab", False):
            _ORIGINAL_PRINTERS[mime] = current  # what %matplotlib inline (or nothing) installed
        fmt.type_printers.pop(Figure, None)
        if on:
            printer._flashlab = True
            fmt.for_type(Figure, printer)
        elif _ORIGINAL_PRINTERS.get(mime) is not None:
            fmt.for_type(Figure, _ORIGINAL_PRINTERS[mime])


def stand_in_run(name: str, directory: Path, spec: dict[str, Any]) -> Path:
    """A synthetic run `<directory>/<name>` (written afresh: seeded, a second or so); manifest says synthetic."""
    # start-up cost: only a notebook that asked for a stand-in pays for the synthetic writer
    import json

    from flashlab.core.rundir import MANIFEST
    from flashlab.core.rundir import write_json_atomic
    from flashlab.testing.synthetic import SyntheticSpec
    from flashlab.testing.synthetic import write_synthetic

    spec = dict(spec)
    experiment = spec.pop("experiment", None) or {}
    path = directory / name
    shutil.rmtree(path, ignore_errors=True)
    write_synthetic(path, SyntheticSpec(run_id=f"SYNTHETIC-{name}", **spec))
    manifest = json.loads((path / MANIFEST).read_text())
    for key, value in experiment.items():
        node = manifest["experiment"].setdefault(key, {})
        if isinstance(node, dict) and isinstance(value, dict):
            node.update(value)
        else:
            manifest["experiment"][key] = value
    write_json_atomic(path / MANIFEST, manifest)
    return path


def _open_synthetic(names: Sequence[str], stand_in: StandIn | None, directory: Path) -> list[Path]:
    mark_synthetic_figures(True)
    paths = [stand_in_run(name, directory, stand_in(name) if stand_in else {}) for name in names]
    body = (
        f"<p>Asked for ({_code('SYNTHETIC')} or {_code(f'{ENV}=1')}): every run below is a "
        f"synthetic stand-in written to {_code(str(directory))}, and every figure says "
        f"{STAMP} in its title. The numbers illustrate the analysis; they are not measurements. "
        f"For real runs: {_code(MAKE_COMMAND)}, then unset {_code(ENV)}.</p>"
    )
    show(
        banner(f"{STAMP}: stand-in data, not measurements", body, _AMBER),
        f"{STAMP} stand-ins (not measurements) for {', '.join(names)} in {directory}",
    )
    return paths


# --- what a notebook calls ----------------------------------------------------------------------


def _given(run_dirs: Sequence[str], root: Path) -> list[CachedRun]:
    paths = [Path(root, d) for d in run_dirs]
    runs = [read(path) for path in paths]
    bad = [path for path, run in zip(paths, runs, strict=True) if run is None]
    if bad:
        show_incomplete(bad)
        raise NoRuns(f"not a complete run: {', '.join(map(str, bad))}")
    return [run for run in runs if run is not None]


def _cached(names: Sequence[str], cache: Path, root: Path, notebook: str) -> list[CachedRun]:
    found = {name: newest(name, cache) for name in names}
    missing = [name for name, run in found.items() if run is None]
    if missing:
        show_missing(missing, cache, root, notebook)
        raise NoRuns(
            f"no cached run for {', '.join(missing)} under {cache}: run `{MAKE_COMMAND}` first"
        )
    return [run for run in found.values() if run is not None]


def open_runs(
    names: str | Sequence[str],
    *,
    run_dirs: str | Sequence[str] | None = None,
    synthetic: bool | str | None = None,
    stand_in: StandIn | None = None,
    cache: str | Path = CACHE,
    synthetic_dir: str | Path = Path("reports") / "synthetic",
    notebook: str = "",
) -> list[Path]:
    """The run directories the notebook reads, one per spec name (or per RUN_DIRS entry).

    Shows which (or a banner) as the cell's output. Raises NoRuns when there is nothing real to
    read and synthetic stand-ins were not asked for.
    """
    root = repo_root()
    names = as_list(names)
    if synthetic_requested(synthetic):
        return _open_synthetic(names, stand_in, Path(root, synthetic_dir, notebook))
    given = as_list(run_dirs)
    if given:
        runs = _given(given, root)
        show_runs(runs, root, "RUN_DIRS as given")
    else:
        cache = Path(root, cache)
        runs = _cached(names, cache, root, notebook)
        show_runs(runs, root, f"the newest complete run of each spec cached under {cache}")
    stand_ins = [run.name for run in runs if run.synthetic]
    mark_synthetic_figures(bool(stand_ins))  # a stand-in given as a run is still a stand-in
    if stand_ins:
        show(
            banner(
                f"{STAMP}: some of these runs are stand-ins",
                f"<p>{', '.join(map(_code, stand_ins))}: the manifest says {_code('synthetic')}. "
                f"Every figure says {STAMP} in its title; its numbers are not measurements.</p>",
                _AMBER,
            ),
            f"{STAMP} stand-ins among the runs: {', '.join(stand_ins)}",
        )
    return [run.path for run in runs]


def open_sweep(
    name: str,
    *,
    sweep_dir: str | None = None,
    synthetic: bool | str | None = None,
    cache: str | Path = CACHE,
    notebook: str = "",
) -> Path:
    """The sweep directory the notebook reads: SWEEP_DIR when given, else the newest cached one.

    There is no synthetic sweep: asked for one, a banner says the notebook reads the real sweep.
    """
    if synthetic_requested(synthetic):
        show(
            banner(
                f"No {STAMP} stand-in for a sweep",
                f"<p>{STAMP} was asked for, but this notebook has no stand-in: it reads a real "
                f"sweep or nothing.</p>",
                _AMBER,
            ),
            f"no {STAMP} stand-in for a sweep: reading the real one",
        )
    given = [sweep_dir] if sweep_dir else None
    return open_runs([name], run_dirs=given, synthetic=False, cache=cache, notebook=notebook)[0]
