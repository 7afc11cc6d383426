"""Chaos: the fault catalogue, a fault schedule entry, its scheduler and the TCP fault proxy."""
