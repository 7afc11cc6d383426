"""`python -m flashlab.analysis.docfigures`: write or check the docs' figure blocks, extract run records.

python -m flashlab.analysis.docfigures write            # what `make docs-figures` runs
python -m flashlab.analysis.docfigures check            # exit 1 naming every stale block
python -m flashlab.analysis.docfigures extract NAME RUN_DIR... [--command CMD]
    # docs/data/NAME.jsonl from run directories, trial sets or matrices (replaces the file)
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from flashlab.analysis.docfigures.blocks import BLOCKS
from flashlab.analysis.docfigures.blocks import placed
from flashlab.analysis.docfigures.blocks import stale_blocks
from flashlab.analysis.docfigures.blocks import write_docs
from flashlab.analysis.docfigures.data import DATA_DIR
from flashlab.analysis.docfigures.extract import extract
from flashlab.core.errors import EXIT_BAD_INPUT
from flashlab.core.errors import UserError
from flashlab.core.provenance import require_checkout


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m flashlab.analysis.docfigures")
    sub = parser.add_subparsers(dest="action")
    sub.add_parser("write", help="rewrite every figures block from the committed data")
    sub.add_parser("check", help="exit 1 when a block differs from what its data renders")
    ext = sub.add_parser("extract", help="write docs/data/NAME.jsonl from run directories")
    ext.add_argument("name", help="the data file's name, e.g. findings")
    ext.add_argument("paths", nargs="+", type=Path, help="run directories, trial sets, matrices")
    ext.add_argument(
        "--command",
        help="how runs whose manifest predates the command field were made "
        "({experiment} = the run's experiment name)",
    )
    return parser


def _check(root: Path) -> int:
    stale = stale_blocks(root)
    unplaced = sorted(set(BLOCKS) - set(placed(root)))
    for s in stale:
        print(f"{s.doc.relative_to(root)}: block '{s.name}' differs from its data\n{s.diff}")
    for name in unplaced:
        print(f"block '{name}' is registered but in no doc")
    if stale or unplaced:
        print("run `make docs-figures` (and change the data, not the doc)", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        root = require_checkout("python -m flashlab.analysis.docfigures")
        if args.action == "extract":
            if not re.fullmatch(r"[a-z0-9-]+", args.name):
                raise UserError(f"NAME: {args.name!r} is not a data file name (a-z, 0-9, -)")
            out = root / DATA_DIR / f"{args.name}.jsonl"
            rows = extract(args.paths, out, args.command)
            print(f"{out.relative_to(root)}: {len(rows)} runs")
            return 0
        if args.action == "check":
            return _check(root)
        for doc in write_docs(root):
            print(f"rewrote {doc.relative_to(root)}")
        return 0
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT


if __name__ == "__main__":
    raise SystemExit(main())
