"""Running the analysis notebooks: parameter injection, execution on the venv's kernel, HTML rendering, stand-in runs.

Notebooks in `notebooks/` are stored without outputs and take their inputs from a cell tagged
`parameters` (papermill style: `RUN_DIRS = [...]`, `SYNTHETIC_DIR = ...`). `execute_notebook`
inserts an `injected-parameters` cell after it, runs the notebook with nbclient on a kernel spec
that points at *this* interpreter (so the kernel sees the venv's packages, whatever `python` is on
PATH), and renders HTML with nbconvert: images inline, no CDN scripts (require.js/MathJax blocks
are emptied), so the page opens offline.

`resolve_run` is what a notebook calls for each run directory: a complete run is used as is; a
missing one is replaced by a synthetic stand-in (flashlab.analysis.synthetic) under SYNTHETIC_DIR, written
once and clearly marked `synthetic` in its manifest. Stand-ins are for unit tests: `make notebooks`
(flashlab.lab.notebooks) makes real runs first and refuses a notebook that fell back to one.

CLI (execute with given parameters, no runs made):
`python -m flashlab.analysis.notebooks --out reports/notebooks [--only 01-oversell] [--param NAME=JSON]`.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections.abc import Iterator
from collections.abc import Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import jinja2

from flashlab.core.extras import MissingExtra
from flashlab.core.provenance import checkout_root
from flashlab.core.rundir import MANIFEST
from flashlab.core.rundir import SUMMARY
from flashlab.core.rundir import write_json_atomic
from flashlab.core.rundir import write_text_atomic

try:  # the `notebooks` extra (pip install 'flashlab[notebooks]'); the core runs without it
    import nbformat
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import KernelManager
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError
    from nbclient.exceptions import CellTimeoutError
    from nbclient.exceptions import DeadKernelError
    from nbformat import NotebookNode
except ImportError:
    _missing = MissingExtra("notebooks", "python -m flashlab.analysis.notebooks")
    if __name__ == "__main__":  # run as a command: one line, exit 2, no traceback
        print(f"error: {_missing}", file=sys.stderr)
        raise SystemExit(_missing.code) from None
    raise _missing from None

# The notebooks live in the repository (notebooks/), not in the installed package.
ROOT = checkout_root() or Path(__file__).resolve().parent.parent
NOTEBOOKS_DIR = ROOT / "notebooks"
KERNEL_NAME = "flashlab-venv"
CELL_TIMEOUT_S = 300
PARAMETERS_TAG = "parameters"
INJECTED_TAG = "injected-parameters"

# An nbconvert "lab" page without the blocks that fetch require.js, MathJax, widgets or mermaid from a CDN.
_OFFLINE_TEMPLATE = """{%- extends 'lab/index.html.j2' -%}
{%- block html_head_js -%}{%- endblock html_head_js -%}
{%- block jupyter_widgets -%}{%- endblock jupyter_widgets -%}
{%- block html_head_js_mathjax -%}{%- endblock html_head_js_mathjax -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
"""


class NotebookError(RuntimeError):
    """A notebook failed to run: the message names the notebook and the failing cell's error."""


# --- parameters ---------------------------------------------------------------------------------


def parameters_index(nb: NotebookNode) -> int | None:
    for i, cell in enumerate(nb.cells):
        if PARAMETERS_TAG in cell.get("metadata", {}).get("tags", []):
            return i
    return None


def inject_parameters(nb: NotebookNode, params: dict[str, Any]) -> NotebookNode:
    """Insert `NAME = <repr>` assignments right after the `parameters` cell (or first, if none)."""
    if not params:
        return nb
    lines = ["# Parameters injected by flashlab.analysis.notebooks"]
    lines += [f"{name} = {value!r}" for name, value in params.items()]
    cell = nbformat.v4.new_code_cell("\n".join(lines), metadata={"tags": [INJECTED_TAG]})
    at = parameters_index(nb)
    nb.cells.insert(0 if at is None else at + 1, cell)
    return nb


# --- kernel -------------------------------------------------------------------------------------


@contextmanager
def venv_kernel() -> Iterator[KernelManager]:
    """A kernel manager whose kernel is `sys.executable -m ipykernel_launcher`, via a throwaway spec dir."""
    with tempfile.TemporaryDirectory(prefix="flashlab-kernel-") as tmp:
        spec_dir = Path(tmp) / KERNEL_NAME
        spec_dir.mkdir()
        spec = {
            "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": "flashlab (.venv)",
            "language": "python",
        }
        (spec_dir / "kernel.json").write_text(json.dumps(spec))
        ksm = KernelSpecManager(kernel_dirs=[tmp])
        # IPC (unix sockets in our temp dir) instead of loopback TCP ports: nothing to collide
        # with the stacks other tests run, and no "unencrypted TCP" warning from the kernel.
        km = KernelManager(
            kernel_name=KERNEL_NAME,
            kernel_spec_manager=ksm,
            transport="ipc",
            ip=str(Path(tmp) / "kernel-ipc"),
        )
        try:
            yield km
        finally:
            # nbclient leaves a kernel it did not create running: stop ours (by its manager/PID).
            if km.has_kernel:
                km.shutdown_kernel(now=True)


# --- execution ----------------------------------------------------------------------------------


def _first_error(nb: NotebookNode) -> str:
    for i, cell in enumerate(nb.cells):
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                return f"cell {i}: {out.get('ename')}: {out.get('evalue')}"
    return "unknown error"


def execute_notebook(
    path: Path | str,
    params: dict[str, Any] | None = None,
    out_html: Path | str | None = None,
    cwd: Path | str | None = None,
    timeout_s: int = CELL_TIMEOUT_S,
) -> NotebookNode:
    """Run `path` with `params` injected; write HTML to `out_html` if given; return the executed notebook.

    Raises NotebookError (one line: notebook, cell, exception) if any cell fails.
    """
    path = Path(path)
    nb = inject_parameters(nbformat.read(path, as_version=4), dict(params or {}))
    workdir = Path(cwd) if cwd else ROOT
    with venv_kernel() as km:
        client = NotebookClient(
            nb,
            km=km,
            timeout=timeout_s,
            allow_errors=False,
            resources={"metadata": {"path": str(workdir)}},
        )
        try:
            client.execute()
        except (CellExecutionError, CellTimeoutError, DeadKernelError) as exc:
            detail = (
                _first_error(nb)
                if isinstance(exc, CellExecutionError)
                else str(exc).splitlines()[0]
            )
            raise NotebookError(f"{path.name}: {detail}") from None
    if out_html is not None:
        write_html(nb, Path(out_html))
    return nb


def write_html(nb: NotebookNode, out_html: Path) -> Path:
    # start-up cost: only this path pays for nbconvert (an optional extra)
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(
        extra_loaders=[jinja2.DictLoader({"flashlab_offline.html.j2": _OFFLINE_TEMPLATE})],
        template_file="flashlab_offline.html.j2",
    )
    html, _ = exporter.from_notebook_node(nb)
    out_html.parent.mkdir(parents=True, exist_ok=True)
    return write_text_atomic(out_html, html)


def notebook_paths(only: Sequence[str] = ()) -> list[Path]:
    paths = sorted(NOTEBOOKS_DIR.glob("*.ipynb"))
    if only:
        known = {p.stem: p for p in paths}
        missing = [name for name in only if name not in known]
        if missing:
            raise NotebookError(
                f"--only: unknown notebook {missing[0]!r} (allowed: {', '.join(known)})"
            )
        paths = [known[name] for name in only]
    return paths


# --- run directories for notebooks --------------------------------------------------------------


def _is_complete_run(path: Path) -> bool:
    try:
        return bool(json.loads((path / "manifest.json").read_text()).get("complete"))
    except (OSError, ValueError):
        return False


def resolve_run(
    path: Path | str,
    synthetic_dir: Path | str,
    experiment: dict[str, Any] | None = None,
    **spec: Any,
) -> Path:
    """`path` if it is a complete run; else a synthetic stand-in `<synthetic_dir>/<name>` (made once).

    `spec` are flashlab.analysis.synthetic.SyntheticSpec fields for the stand-in; `experiment` is merged
    into the stand-in's manifest experiment (e.g. {"stack": {"durability": "aof-always"}}) so
    notebooks can label it like a real run.
    """
    path = Path(path)
    if _is_complete_run(path):
        return path
    # start-up cost: only this path pays for the analysis modules and the check registry
    from flashlab.analysis.synthetic import SyntheticSpec
    from flashlab.analysis.synthetic import write_synthetic

    stand_in = Path(synthetic_dir) / path.name
    if not _is_complete_run(stand_in):
        write_synthetic(stand_in, SyntheticSpec(run_id=path.name, **spec))
        if experiment:
            manifest = json.loads((stand_in / MANIFEST).read_text())
            for key, value in experiment.items():
                node = manifest["experiment"].setdefault(key, {})
                if isinstance(node, dict) and isinstance(value, dict):
                    node.update(value)
                else:
                    manifest["experiment"][key] = value
            write_json_atomic(stand_in / MANIFEST, manifest)
        (stand_in / SUMMARY).unlink(missing_ok=True)
    print(f"{path}: no complete run there; using synthetic stand-in {stand_in}")
    return stand_in


# --- CLI ----------------------------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2 (house rule), not usage + error
        print(f"error: {message}", file=sys.stderr)
        raise SystemExit(2)


def main(argv: Sequence[str] | None = None) -> int:
    parser = _Parser(
        prog="python -m flashlab.analysis.notebooks",
        description="Execute the analysis notebooks and render HTML.",
    )
    parser.add_argument(
        "--out", type=Path, default=ROOT / "reports" / "notebooks", help="where the .html files go"
    )
    parser.add_argument(
        "--only", action="append", default=[], help="notebook name (stem), repeatable"
    )
    parser.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="NAME=JSON",
        help="override a parameter, e.g. --param 'RUN_DIRS=[\"reports/lua\"]'",
    )
    args = parser.parse_args(argv)
    params: dict[str, Any] = {}
    for item in args.param:
        name, sep, raw = item.partition("=")
        try:
            if not (sep and name.isidentifier()):
                raise ValueError("expected NAME=JSON")
            params[name] = json.loads(raw)
        except ValueError as exc:
            parser.error(f"--param {item!r}: {exc}")
    if checkout_root() is None:
        print(
            "error: the notebooks live in a flashlab checkout (notebooks/); run from one",
            file=sys.stderr,
        )
        return 2
    try:
        paths = notebook_paths(args.only)
    except NotebookError as exc:
        parser.error(str(exc))
    try:
        for path in paths:
            out = args.out / f"{path.stem}.html"
            execute_notebook(path, params, out)
            print(f"{path.name} -> {out}")
    except NotebookError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
