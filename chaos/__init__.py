"""Chaos: the fault catalogue, the TCP fault proxy, experiment files and their scheduler."""
