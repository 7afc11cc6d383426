"""Executing the analysis notebooks with papermill on this interpreter's kernel, and rendering them as offline HTML.

Notebooks in `notebooks/` are stored without outputs and take their inputs from a cell tagged
`parameters`. `execute_notebook` runs one with papermill (which adds the `injected-parameters`
cell after it, exactly as `papermill NB OUT -p NAME VALUE` does) on a kernel spec that points at
*this* interpreter (so the kernel sees this venv's packages and this checkout's code, whatever
`python` or kernel is on PATH), and renders HTML with nbconvert: images inline, no CDN scripts
(require.js/MathJax blocks are emptied), so the page opens offline.

What a notebook reads by default (the newest cached real runs, a banner when there are none,
synthetic stand-ins only when asked for) is flashlab.analysis.notebook_setup's job; making the
real runs is `make notebooks` (flashlab.lab.notebooks).

CLI (execute with given parameters, no runs made; `-p` as papermill takes it):
`python -m flashlab.analysis.notebooks --out reports/notebooks [--only 01-oversell] [-p NAME VALUE]`.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
from collections.abc import Iterator
from collections.abc import Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from typing import NoReturn

import jinja2

from flashlab.core.errors import InfraError
from flashlab.core.extras import MissingExtra
from flashlab.core.provenance import checkout_root
from flashlab.core.rundir import write_text_atomic

try:  # the `notebooks` extra (pip install 'flashlab[notebooks]'); the core runs without it
    import nbformat
    import papermill
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import KernelManager
    from nbformat import NotebookNode
    from papermill.exceptions import PapermillExecutionError
except ImportError:
    _missing = MissingExtra("notebooks", "python -m flashlab.analysis.notebooks")
    if __name__ == "__main__":  # run as a command: one line, exit 2, no traceback
        print(f"error: {_missing}", file=sys.stderr)
        raise SystemExit(_missing.exit_code) from None
    raise _missing from None

# The notebooks live in the repository (notebooks/), not in the installed package.
ROOT = checkout_root() or Path(__file__).resolve().parent.parent
NOTEBOOKS_DIR = ROOT / "notebooks"
KERNEL_NAME = "flashlab-venv"
CELL_TIMEOUT_S = 300

# An nbconvert "lab" page without the blocks that fetch require.js, MathJax, widgets or mermaid from a CDN.
_OFFLINE_TEMPLATE = """{%- extends 'lab/index.html.j2' -%}
{%- block html_head_js -%}{%- endblock html_head_js -%}
{%- block jupyter_widgets -%}{%- endblock jupyter_widgets -%}
{%- block html_head_js_mathjax -%}{%- endblock html_head_js_mathjax -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
"""


class NotebookError(InfraError, RuntimeError):
    """A notebook failed to run: the message names the notebook and the failing cell's error.

    `notebook` is the notebook as far as it ran (the failing cell's output included), or None.
    """

    def __init__(self, message: str, notebook: NotebookNode | None = None) -> None:
        super().__init__(message)
        self.notebook = notebook


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


def _papermill(path: Path, out: Path, params: dict[str, Any], cwd: Path, timeout_s: int) -> None:
    # papermill logs every cell at INFO (and warns of parameters the cell lacks): keep that quiet.
    logging.getLogger("papermill").setLevel(logging.ERROR)
    with venv_kernel() as km:
        papermill.execute_notebook(
            str(path),
            str(out),
            parameters=params,
            kernel_name=KERNEL_NAME,
            language="python",
            progress_bar=False,
            cwd=str(cwd),
            execution_timeout=timeout_s,
            km=km,
        )


def execute_notebook(
    path: Path | str,
    params: dict[str, Any] | None = None,
    out_html: Path | str | None = None,
    cwd: Path | str | None = None,
    timeout_s: int = CELL_TIMEOUT_S,
    out_ipynb: Path | str | None = None,
) -> NotebookNode:
    """Run `path` with papermill, `params` injected; write HTML to `out_html` and the executed
    notebook to `out_ipynb` if given; return the executed notebook.

    Raises NotebookError (one line: notebook, cell, exception) if any cell fails; the HTML and the
    executed notebook are written all the same (papermill marks the failing cell), so a notebook
    that stopped on its banner still renders it.
    """
    path = Path(path)
    with tempfile.TemporaryDirectory(prefix="flashlab-nb-") as tmp:
        out = Path(out_ipynb) if out_ipynb else Path(tmp) / path.name
        out.parent.mkdir(parents=True, exist_ok=True)
        error = None
        try:
            _papermill(path, out, dict(params or {}), Path(cwd or ROOT), timeout_s)
        except PapermillExecutionError as exc:
            error = f"cell {exc.cell_index}: {exc.ename}: {exc.evalue}"
        except (TimeoutError, RuntimeError) as exc:  # cell timeout, dead kernel
            error = str(exc).splitlines()[0]
        nb = nbformat.read(out, as_version=4) if out.is_file() else None
    if nb is not None and out_html is not None:
        write_html(nb, Path(out_html))
    if error is not None or nb is None:
        raise NotebookError(f"{path.name}: {error or 'no notebook was written'}", nb)
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


# --- CLI ----------------------------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, exit 2 (house rule), not usage + error
        print(f"error: {message}", file=sys.stderr)
        raise SystemExit(2)


def parameter_value(text: str) -> Any:
    """A `-p` value typed as papermill's CLI types it: True/False/None, int, float, else the string."""
    constants = {"True": True, "False": False, "None": None}
    if text in constants:
        return constants[text]
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def _arguments(argv: Sequence[str] | None) -> tuple[argparse.Namespace, _Parser]:
    parser = _Parser(
        prog="python -m flashlab.analysis.notebooks",
        description="Execute the analysis notebooks with papermill and render offline HTML.",
        epilog="Example: python -m flashlab.analysis.notebooks --only 01-oversell "
        "-p RUN_DIRS reports/my-naive,reports/my-lua",
    )
    parser.add_argument(
        "--out", type=Path, default=ROOT / "reports" / "notebooks", help="where the .html files go"
    )
    parser.add_argument(
        "--only", action="append", default=[], help="notebook name (stem), repeatable"
    )
    parser.add_argument(
        "-p",
        "--parameters",
        nargs=2,
        action="append",
        default=[],
        metavar=("NAME", "VALUE"),
        help="a parameter, as papermill's -p (e.g. -p SYNTHETIC True, -p RUN_DIRS a,b)",
    )
    return parser.parse_args(argv), parser


def main(argv: Sequence[str] | None = None) -> int:
    args, parser = _arguments(argv)
    params: dict[str, Any] = {}
    for name, value in args.parameters:
        if not name.isidentifier():
            parser.error(f"-p {name!r}: not a parameter name")
        params[name] = parameter_value(value)
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
