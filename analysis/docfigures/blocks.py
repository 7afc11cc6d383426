"""The figure blocks in README.md and docs/*.md: finding them, rendering each, rewriting and checking.

A block is `<!-- figures:NAME start -->` ... `<!-- figures:NAME end -->`; NAME must be in
`BLOCKS`, whose entries are `"module:function"` references to a function `(root) -> str` that
renders the block's body from files committed under the repository root `root`.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from flashlab.core.errors import UserError
from flashlab.core.registry import Registry

_PKG = "flashlab.analysis.docfigures"
BLOCKS = Registry(
    "figures block",
    {
        "findings": f"{_PKG}.runs:findings",
        "example-experiment": f"{_PKG}.files:example_experiment",
        "recovery": f"{_PKG}.runs:recovery",
        "matrix": f"{_PKG}.runs:matrix",
        "targets": f"{_PKG}.runs:targets",
        "bench-machine": f"{_PKG}.bench:machine",
        "benchmarks": f"{_PKG}.bench:latest",
        "bench-ceiling": f"{_PKG}.bench:ceiling",
        "bench-stability": f"{_PKG}.bench:stability",
        "bench-actors": f"{_PKG}.bench:actors",
    },
    error=UserError,
)
BLOCK = re.compile(
    r"(?P<start><!-- figures:(?P<name>[a-z0-9-]+) start -->\n)(?P<body>.*?)"
    r"(?P<end><!-- figures:(?P=name) end -->)",
    re.DOTALL,
)
MARKER = re.compile(r"<!-- figures:([a-z0-9-]+) (start|end) -->")


@dataclass(frozen=True)
class Stale:
    """A block whose text differs from what its data renders."""

    doc: Path
    name: str
    diff: str


def doc_paths(root: Path) -> list[Path]:
    """The docs that may hold blocks: README.md and docs/*.md."""
    return [root / "README.md", *sorted((root / "docs").glob("*.md"))]


def render(name: str, root: Path, doc: Path | None = None) -> str:
    """The body of block `name`, rendered from the committed files under `root`."""
    try:
        body: str = BLOCKS.load(name)(root)
    except UserError as exc:
        raise UserError(f"{doc}: {exc}" if doc else str(exc)) from None
    return body.rstrip("\n") + "\n"


def _check_markers(doc: Path, text: str) -> None:
    """Every start has its end: a stray or unpaired marker is a UserError naming doc and block."""
    paired = {m.start("start") for m in BLOCK.finditer(text)}
    paired |= {m.start("end") for m in BLOCK.finditer(text)}
    for m in MARKER.finditer(text):
        if m.start() not in paired:
            raise UserError(f"{doc}: '{m.group(0)}' has no matching {m.group(1)} marker")


def _rewritten(doc: Path, root: Path, only: Iterable[str] | None = None) -> str:
    text = doc.read_text(encoding="utf-8")
    _check_markers(doc, text)
    wanted = None if only is None else set(only)

    def fill(m: re.Match[str]) -> str:
        if wanted is not None and m["name"] not in wanted:
            return m.group(0)
        return m["start"] + render(m["name"], root, doc) + m["end"]

    return BLOCK.sub(fill, text)


def write_docs(
    root: Path, docs: list[Path] | None = None, only: Iterable[str] | None = None
) -> list[Path]:
    """Rewrite every block (or those named in `only`); return the docs whose text changed."""
    changed = []
    for doc in doc_paths(root) if docs is None else docs:
        before = doc.read_text(encoding="utf-8")
        after = _rewritten(doc, root, only)
        if after != before:
            doc.write_text(after, encoding="utf-8")
            changed.append(doc)
    return changed


def stale_blocks(root: Path, docs: list[Path] | None = None) -> list[Stale]:
    """Every block whose text is not what its data renders, with a unified diff."""
    found = []
    for doc in doc_paths(root) if docs is None else docs:
        text = doc.read_text(encoding="utf-8")
        _check_markers(doc, text)
        for m in BLOCK.finditer(text):
            want = render(m["name"], root, doc)
            if m["body"] != want:
                diff = difflib.unified_diff(
                    m["body"].splitlines(),
                    want.splitlines(),
                    "in the doc",
                    "from the data",
                    lineterm="",
                )
                found.append(Stale(doc, m["name"], "\n".join(diff)))
    return found


def placed(root: Path, docs: list[Path] | None = None) -> dict[str, list[Path]]:
    """Block name -> the docs that hold it."""
    where: dict[str, list[Path]] = {}
    for doc in doc_paths(root) if docs is None else docs:
        for m in BLOCK.finditer(doc.read_text(encoding="utf-8")):
            where.setdefault(m["name"], []).append(doc)
    return where
