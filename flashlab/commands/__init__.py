"""CLI command groups, one module each; `flashlab.cli` mounts them."""
