"""Where a benchmark writes and at which size: BenchContext, the sizes, the result paths."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

Size = Literal["tiny", "full"]
REPO_ROOT = Path(__file__).resolve().parent.parent
RESULTS_FULL = REPO_ROOT / "bench" / "results.jsonl"
PLOTS_FULL = REPO_ROOT / "bench" / "plots"
# Tiny runs are smoke checks of the harness, not measurements: they never touch the committed files.
TINY_DIR = REPO_ROOT / "reports" / "bench-tiny"


@dataclass
class BenchContext:
    """Where a benchmark writes, at which size, and how it was invoked."""

    size: Size
    results_path: Path
    plots_dir: Path
    command: str = ""
    log: Callable[[str], None] = lambda _msg: None

    @property
    def tiny(self) -> bool:
        return self.size == "tiny"

    def plot_path(self, bench: str) -> Path:
        self.plots_dir.mkdir(parents=True, exist_ok=True)
        return self.plots_dir / f"{bench}.png"


def default_paths(size: Size) -> tuple[Path, Path]:
    if size == "tiny":
        return TINY_DIR / "results.jsonl", TINY_DIR / "plots"
    return RESULTS_FULL, PLOTS_FULL
