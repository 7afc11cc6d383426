"""Measured figures in README.md and docs/*.md, regenerated from committed result files.

A doc holds a measured figure only inside a named block, which `make docs-figures` writes and a
test keeps honest:

    <!-- figures:NAME start -->
    ... rendered from committed data, never edited by hand ...
    <!-- figures:NAME end -->

`blocks.BLOCKS` maps each NAME to the small function that renders it from files committed in the
repository: `docs/data/*.jsonl` (one record per run directory, written by `extract`),
`bench/results.jsonl` and the shipped experiments. Every rendered block states the date, the
machine and the command its figures come from. Only committed files are read: never a stack,
shoppers or faults, and never `reports/` (run directories are extracted once, then committed).
"""
