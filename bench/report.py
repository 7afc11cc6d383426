"""Rewrites the benchmark blocks of docs/BENCHMARKS.md and docs/SCALE.md from bench/results.jsonl.

`flashlab bench ... --size full` calls `update()` after appending its lines; `make docs-figures`
rewrites these and every other figures block (flashlab.analysis.docfigures).
"""

from __future__ import annotations

from flashlab.analysis.docfigures.blocks import write_docs
from flashlab.bench.context import REPO_ROOT

# The blocks rendered from bench/results.jsonl (flashlab.analysis.docfigures.bench).
BENCH_BLOCKS = ("bench-machine", "benchmarks", "bench-stability", "bench-actors")


def update() -> bool:
    """Rewrite the benchmark blocks; True when a doc changed."""
    return bool(write_docs(REPO_ROOT, only=BENCH_BLOCKS))


if __name__ == "__main__":
    update()
