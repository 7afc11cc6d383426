"""The bottom layer: the contracts every other layer shares, importing nothing above it.

The HTTP contract, the platform interface, the run-directory format, run provenance, errors and
exit codes. It imports nothing from the rest of flashlab."""
