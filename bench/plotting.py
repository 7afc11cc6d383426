"""Plots of a benchmark: matplotlib without a display, one PNG per benchmark."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def pyplot() -> Any:
    # start-up cost: only this path pays for matplotlib, numpy
    import matplotlib

    matplotlib.use("Agg")
    # start-up cost: only this path pays for matplotlib, numpy
    import matplotlib.pyplot as plt

    return plt


def save_plot(fig: Any, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    pyplot().close(fig)
    return path
