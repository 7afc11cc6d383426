"""The per-user rate limit's effect on bots, with real parts: experiments/bots.yaml and
experiments/bots-limited.yaml, shrunk, run by `flashlab run` on real stacks with the same seed.
Without the limit bots (no backoff) take more than their share of the units; with it they are
answered 429 and their share falls."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from typer.testing import CliRunner

from flashlab.cli import app

ROOT = Path(__file__).resolve().parents[1]


def _run(tmp_path: Path, name: str) -> dict[str, Any]:
    exp = yaml.safe_load((ROOT / "experiments" / f"{name}.yaml").read_text())
    exp["scenario"]["shoppers"], exp["product"]["stock"] = 400, 40
    exp["seed"] = 3
    exp["hypothesis"] = ["oversell == 0", "lost_acknowledged == 0"]
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(exp))
    out = tmp_path / name
    result = CliRunner().invoke(app, ["run", str(path), "--out", str(out), "--no-report"])
    assert result.exit_code == 0, result.output
    return json.loads((out / "summary.json").read_text())


def test_rate_limit_answers_bots_429_and_lowers_their_share(tmp_path: Path) -> None:
    free = _run(tmp_path, "bots")
    limited = _run(tmp_path, "bots-limited")
    assert "rate_limited" not in free["codes"]
    assert limited["codes"].get("rate_limited", 0) > 0
    bots_free = free["fairness"]["profiles"]["bot"]
    bots_limited = limited["fairness"]["profiles"]["bot"]
    assert bots_free["shopper_share"] == bots_limited["shopper_share"]  # same seed, same shoppers
    assert bots_free["unit_share"] > bots_free["shopper_share"]  # bots out-buy their numbers
    assert bots_limited["unit_share"] < bots_free["unit_share"]
