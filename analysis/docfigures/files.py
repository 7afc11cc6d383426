"""Blocks that show a shipped file as it is, so the docs cannot drift from it (the README's example)."""

from __future__ import annotations

from pathlib import Path

from flashlab.core.errors import UserError

EXAMPLE_EXPERIMENT = Path("experiments") / "demo-chaos.yaml"


def example_experiment(root: Path) -> str:
    """README "Experiment files": the experiment `make demo` runs, verbatim."""
    path = root / EXAMPLE_EXPERIMENT
    try:
        body = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"{path}: missing (the README shows it)") from None
    return (
        f"`{EXAMPLE_EXPERIMENT.as_posix()}` as shipped (`flashlab run demo-chaos`; "
        "copied here by `make docs-figures`):\n\n"
        f"```yaml\n{body.rstrip()}\n```"
    )
