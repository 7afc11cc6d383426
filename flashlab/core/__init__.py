"""The bottom layer: the contracts every other layer shares (HTTP contract, platform interface,
run-directory format, run metadata). It imports nothing from the rest of flashlab."""
