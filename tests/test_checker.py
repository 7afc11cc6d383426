"""The consistency checker on synthetic run directories: clean runs pass, each planted anomaly is found exactly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from flashlab.analysis.checker import CHECKS, check
from flashlab.analysis.synthetic import SyntheticSpec, main, write_synthetic
from flashlab.core.rundir import TRUTH, load_run

# planter -> (check that must fire with exactly k, checks that fire as a consequence with k)
CASES: dict[str, tuple[str, tuple[str, ...]]] = {
    "oversell": ("oversell", ("conservation",)),  # extra orders with stock already 0
    "negative_stock": ("negative_stock", ()),
    "lost_acknowledged": ("lost_acknowledged", ()),
    "duplicate_purchases": ("duplicate_purchases", ()),
    "phantom_orders": ("phantom_orders", ()),
    "server_errors": ("server_errors", ()),
    "conservation": ("conservation", ()),
}


def _spec(plant: dict[str, int], seed: int = 7) -> SyntheticSpec:
    # Enough stock left over that a duplicate purchase does not also drive stock negative.
    stock = 1_000 if "duplicate_purchases" in plant else 120
    return SyntheticSpec(seed=seed, shoppers=400, stock=stock, plant=plant)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_clean_run_passes_every_check(tmp_path: Path, seed: int) -> None:
    write_synthetic(tmp_path, _spec({}, seed))
    results = check(load_run(tmp_path))
    assert set(results) == set(CHECKS)
    for name, result in results.items():
        assert result.ok, (name, result)
        assert result.count == 0 and result.examples == []


@pytest.mark.parametrize("planter", sorted(CASES))
@pytest.mark.parametrize("k", [1, 3])
def test_planted_anomaly_is_flagged_exactly(tmp_path: Path, planter: str, k: int) -> None:
    planted = write_synthetic(tmp_path, _spec({planter: k}))[planter]
    results = check(load_run(tmp_path))
    name, collateral = CASES[planter]
    assert not results[name].ok
    assert results[name].count == k
    assert set(planted) <= set(results[name].examples)
    for other, result in results.items():
        if other == name:
            continue
        if other in collateral:
            assert result.count == k, (other, result)
        else:
            assert result.ok, (other, result)


def test_examples_are_capped_at_ten(tmp_path: Path) -> None:
    planted = write_synthetic(tmp_path, _spec({"lost_acknowledged": 15}))["lost_acknowledged"]
    result = check(load_run(tmp_path))["lost_acknowledged"]
    assert result.count == 15
    assert len(result.examples) == 10
    assert set(result.examples) <= set(planted)


def test_indeterminate_ops_explain_unacknowledged_orders(tmp_path: Path) -> None:
    write_synthetic(tmp_path, _spec({"indeterminate": 4}))
    results = check(load_run(tmp_path))
    assert all(r.ok for r in results.values()), results
    assert "4 explained by indeterminate ops" in results["phantom_orders"].detail


def test_phantoms_and_indeterminates_are_told_apart(tmp_path: Path) -> None:
    planted = write_synthetic(tmp_path, _spec({"indeterminate": 2, "phantom_orders": 3}))
    result = check(load_run(tmp_path))["phantom_orders"]
    assert result.count == 3
    assert set(result.examples) == set(planted["phantom_orders"])
    assert not set(result.examples) & set(planted["indeterminate"])


def test_negative_final_stock_in_truth_is_flagged(tmp_path: Path) -> None:
    write_synthetic(tmp_path, _spec({}))
    truth = json.loads((tmp_path / TRUTH).read_text())
    truth["stock_remaining"] = -2
    (tmp_path / TRUTH).write_text(json.dumps(truth))
    results = check(load_run(tmp_path))
    assert results["negative_stock"].count == 1
    assert results["negative_stock"].examples == ["truth:stock_remaining=-2"]
    assert results["conservation"].count == 2


def test_several_anomalies_at_once(tmp_path: Path) -> None:
    plant = {"lost_acknowledged": 2, "phantom_orders": 2, "server_errors": 5, "negative_stock": 1}
    write_synthetic(tmp_path, _spec(plant))
    results = check(load_run(tmp_path))
    for name, k in plant.items():
        assert results[name].count == k, name
    assert results["oversell"].ok and results["duplicate_purchases"].ok


def test_result_serialises(tmp_path: Path) -> None:
    write_synthetic(tmp_path, _spec({"oversell": 2}))
    as_dict = check(load_run(tmp_path))["oversell"].to_dict()
    assert json.loads(json.dumps(as_dict)) == as_dict
    assert set(as_dict) == {"ok", "count", "examples", "detail"}


def test_synthetic_cli_rejects_bad_input_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for args, needle in [(["oversell=x"], "oversell=x"), (["bogus=1"], "'bogus'"), ([], "usage")]:
        assert main([str(tmp_path / "run"), *args] if args else []) == 2
        err = capsys.readouterr().err
        assert needle in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()
    assert main([str(tmp_path / "run"), "phantom_orders=2"]) == 0
    assert json.loads(capsys.readouterr().out)["planted"]["phantom_orders"]
    assert check(load_run(tmp_path / "run"))["phantom_orders"].count == 2


def test_synthetic_runs_are_reproducible(tmp_path: Path) -> None:
    spec = _spec({"oversell": 2, "phantom_orders": 1})
    write_synthetic(tmp_path / "a", spec)
    write_synthetic(tmp_path / "b", spec)
    for f in sorted((tmp_path / "a").iterdir()):
        assert f.read_bytes() == (tmp_path / "b" / f.name).read_bytes(), f.name
