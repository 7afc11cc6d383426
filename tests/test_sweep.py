"""`flashlab sweep` end to end on real stacks (tiny: 100 shoppers a cell), its bad input, and
notebook 05 executed on the real sweep it made."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pandas as pd
import pytest
from support import assert_one_line_error
from support import run_flashlab

from flashlab.core.errors import UserError
from flashlab.lab.experiment import load_experiment
from flashlab.lab.sweep_runner import MAX_CELLS
from flashlab.lab.sweep_runner import parse_set
from flashlab.lab.sweep_runner import plan_cells
from flashlab.lab.sweep_runner import stack_groups

ROOT = Path(__file__).resolve().parent.parent
SMOKE = ROOT / "experiments" / "smoke.yaml"
RACE = ROOT / "experiments" / "race-window.yaml"
TINY = "scenario.shoppers: 100\n"


def flashlab(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return run_flashlab(*args, timeout=timeout)


def tiny_experiment(tmp_path: Path, base: Path, name: str, **product: object) -> Path:
    """`base` at 100 shoppers (and the product fields given), written next to the test."""
    import yaml

    data = yaml.safe_load(base.read_text())
    data["scenario"]["shoppers"] = 100
    data["scenario"]["arrival"] = {"kind": "spike", "window_s": 0.3}
    data["product"].update(product)
    data["stack"]["prometheus"] = False
    data["isolation"] = {"mode": "off"}  # tests share 2 cores: no pinning
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


# --- planning and bad input (no stack) ----------------------------------------------------------


def test_plan_is_the_grid_validated_and_grouped_by_stack() -> None:
    exp = load_experiment(SMOKE)
    sets = [parse_set("product.stock=5,10"), parse_set("stack.workers=1,2")]
    cells = plan_cells(exp, sets)
    assert [c.values for c in cells] == [
        {"product.stock": 5, "stack.workers": 1},
        {"product.stock": 5, "stack.workers": 2},
        {"product.stock": 10, "stack.workers": 1},
        {"product.stock": 10, "stack.workers": 2},
    ]
    assert [c.experiment.product.stock for c in cells] == [5, 5, 10, 10]
    groups = stack_groups(cells)
    assert [[c.index for c in g] for g in groups] == [[1, 3], [2, 4]]


def test_strategy_settings_and_list_fields_are_sweepable() -> None:
    exp = load_experiment(ROOT / "experiments" / "demo-chaos.yaml")
    cells = plan_cells(
        exp, [parse_set("product.settings.naive_delay_ms=0,2.5"), parse_set("faults.1.at_s=0.5")]
    )
    assert [c.experiment.product.settings["naive_delay_ms"] for c in cells] == [0, 2.5]
    assert {c.experiment.faults[1].at_s for c in cells} == {0.5}


def test_unknown_path_names_the_closest() -> None:
    with pytest.raises(UserError, match=r"--set scenario\.shopers: unknown .*'scenario\.shoppers'"):
        plan_cells(load_experiment(SMOKE), [parse_set("scenario.shopers=1,2")])


def test_wrong_type_is_caught_before_anything_runs() -> None:
    with pytest.raises(UserError, match=r"--set scenario\.shoppers=lots: scenario\.shoppers"):
        plan_cells(load_experiment(SMOKE), [parse_set("scenario.shoppers=100,lots")])


def test_too_many_cells_need_yes() -> None:
    exp = load_experiment(SMOKE)
    values = ",".join(str(v) for v in range(1, MAX_CELLS + 2))
    with pytest.raises(UserError, match=r"51 cells .* --yes"):
        plan_cells(exp, [parse_set(f"product.stock={values}")])
    assert len(plan_cells(exp, [parse_set(f"product.stock={values}")], yes=True)) == 51


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["--set", "product.stok=1,2"], ("--set product.stok", "'product.stock'")),
        (["--set", "scenario.shoppers=10,abc"], ("scenario.shoppers=abc", "scenario.shoppers")),
        (["--set", "product.stock"], ("--set", "PATH=V1,V2")),
        (["--set", f"product.stock={','.join(map(str, range(1, 60)))}"], ("59 cells", "--yes")),
        (["--set", "product.stock=1", "--repeat", "0"], ("--repeat",)),
    ],
)
def test_cli_bad_input_is_one_line_and_makes_nothing(
    args: list[str], needles: tuple[str, ...], tmp_path: Path
) -> None:
    out = tmp_path / "sweep"
    assert_one_line_error(
        flashlab("sweep", str(SMOKE), *args, "--out", str(out), timeout=60), *needles
    )
    assert not out.exists()


# --- real sweeps --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def race_sweep(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real 2-cell sweep of the race window: naive, 100 shoppers, 10 units, delay 0 and 5 ms."""
    tmp = tmp_path_factory.mktemp("sweep")
    exp = tiny_experiment(tmp, RACE, "race", stock=10)
    out = tmp / "race"
    proc = flashlab(
        "sweep", str(exp), "--set", "product.settings.naive_delay_ms=0,5",
        "--out", str(out), "--json", "--no-report",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout)
    assert result["sweep_dir"] == str(out)
    return out


def test_sweep_writes_complete_cells_parquet_and_html(race_sweep: Path) -> None:
    manifest = json.loads((race_sweep / "sweep.json").read_text())
    assert manifest["complete"] is True and manifest["stacks"] == 1
    assert [c["values"] for c in manifest["cells"]] == [
        {"product.settings.naive_delay_ms": 0},
        {"product.settings.naive_delay_ms": 5},
    ]
    frame = pd.read_parquet(race_sweep / "sweep.parquet")
    assert frame["product.settings.naive_delay_ms"].tolist() == [0, 5]
    for row, cell in zip(frame.to_dict("records"), manifest["cells"], strict=True):
        summary = json.loads((race_sweep / cell["name"] / "summary.json").read_text())
        run = json.loads((race_sweep / cell["name"] / "manifest.json").read_text())
        assert run["complete"] and run["sweep"]["cell"] == cell["name"]
        assert (
            run["experiment"]["product"]["settings"]["naive_delay_ms"]
            == row["product.settings.naive_delay_ms"]
        )
        assert row["sold"] == summary["sold"] and row["oversell"] == summary["oversell"]
        assert row["verdict"] == summary["verdict"] == cell["verdict"]
        assert pd.isna(row["oversell_ci_low"])  # one run per cell: no interval
    # Both cells ran on one stack: the same nginx port in each run's manifest.
    stacks = {
        json.loads((race_sweep / c["name"] / "manifest.json").read_text())["stack"]["base_url"]
        for c in manifest["cells"]
    }
    assert len(stacks) == 1
    html = (race_sweep / "sweep.html").read_text()
    assert html.count("<img") >= 5 and "oversell" in html
    assert not re.search(r"""(?:src|href)=["'](?:https?:)?//""", html)


def test_repeat_gives_ci_columns_and_a_stack_per_stack_value(tmp_path: Path) -> None:
    exp = tiny_experiment(tmp_path, SMOKE, "smoke", stock=10)
    out = tmp_path / "workers"
    proc = flashlab(
        "sweep", str(exp), "--set", "stack.workers=1,2", "--repeat", "2",
        "--out", str(out), "--no-report",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    manifest = json.loads((out / "sweep.json").read_text())
    assert manifest["complete"] and manifest["stacks"] == 2
    assert {c["kind"] for c in manifest["cells"]} == {"trial-set"}
    frame = pd.read_parquet(out / "sweep.parquet")
    assert frame["n"].tolist() == [2, 2]
    assert frame["p99_ci_low"].notna().all() and frame["p99_ci_high"].notna().all()
    assert (frame["p99_ci_low"] <= frame["p99"]).all() and (
        frame["p99"] <= frame["p99_ci_high"]
    ).all()
    workers = [
        json.loads((out / c["name"] / "trial-01" / "manifest.json").read_text())["experiment"][
            "stack"
        ]["workers"]
        for c in manifest["cells"]
    ]
    assert workers == [1, 2]


def test_notebook_05_executes_on_the_real_sweep(race_sweep: Path, tmp_path: Path) -> None:
    from flashlab.analysis.notebooks import NOTEBOOKS_DIR
    from flashlab.analysis.notebooks import execute_notebook

    out_html = tmp_path / "05.html"
    done = execute_notebook(
        NOTEBOOKS_DIR / "05-race-window.ipynb",
        {"SWEEP_DIR": str(race_sweep), "SYNTHETIC_DIR": str(tmp_path / "syn")},
        out_html,
    )
    outputs = [o for c in done.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    assert len([o for o in outputs if "image/png" in o.get("data", {})]) >= 3
    text = "\n".join(str(o.get("text", "")) for o in outputs)
    assert "2 cells, 1 run(s) per cell" in text
    assert not (tmp_path / "syn").exists()
    assert "stand-in" not in out_html.read_text()
