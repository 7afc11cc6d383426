"""One record per run directory: the figures a doc block needs, read from manifest.json and summary.json.

`extract(paths, out)` accepts run directories, trial sets (their `trial-NN` runs) and matrices
(their cells, with each cell's expected verdict from matrix.json), and writes one sorted record
per run, oldest first, to `out` (replacing it): the file is exactly what those runs say. Runs
made before manifests recorded their command line take `command` (`{experiment}` is replaced by
the run's experiment name), and the record says the command was given, not recorded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flashlab.analysis.docfigures.data import write_jsonl
from flashlab.analysis.stats import host_spreads
from flashlab.core.errors import UserError
from flashlab.core.rundir import MANIFEST
from flashlab.core.rundir import SUMMARY
from flashlab.core.rundir import RunDirError
from flashlab.core.rundir import read_json

MATRIX = "matrix.json"


def _r(value: Any, digits: int) -> Any:
    return round(value, digits) if isinstance(value, float) else value


def run_dirs(path: Path) -> list[tuple[Path, dict[str, Any] | None]]:
    """(run directory, its matrix cell or None) for a run, a trial set or a matrix directory."""
    if (path / SUMMARY).is_file():
        return [(path, None)]
    if (path / MATRIX).is_file():
        cells = read_json(path / MATRIX).get("cells") or []
        found: list[tuple[Path, dict[str, Any] | None]] = []
        for index, cell in enumerate(cells):
            cell = cell | {"index": index}
            found += [(d, cell) for d, _ in run_dirs(path / Path(cell["run_dir"]).name)]
        return found
    trials = sorted(p for p in path.glob("trial-*") if (p / SUMMARY).is_file())
    if not trials:
        raise UserError(f"{path}: not a run directory, trial set or matrix (no {SUMMARY})")
    return [(t, None) for t in trials]


def _host(manifest: dict[str, Any], summary: dict[str, Any]) -> dict[str, Any]:
    host = manifest.get("host") or {}
    spreads = host_spreads(summary.get("host_speed") or manifest.get("host_speed"))
    return {
        "hostname": host.get("hostname"),
        "cpus": host.get("cpus"),
        "memory_gib": host.get("memory_gib"),
        "load_avg_1m": (host.get("load_avg") or [None])[0],
        "speed_spread": _r(max(spreads.values()), 2) if spreads else None,
    }


def _setup(experiment: dict[str, Any]) -> dict[str, Any]:
    """What the run was: strategy, durability, target, shoppers, stock, faults."""
    stack, product = experiment.get("stack") or {}, experiment.get("product") or {}
    target = experiment.get("target") or {}
    return {
        "experiment": experiment.get("name"),
        "target": target.get("name"),
        "strategy": product.get("strategy"),
        "durability": stack.get("durability"),
        "shoppers": (experiment.get("scenario") or {}).get("shoppers"),
        "stock": product.get("stock"),  # as put on sale; stock_initial is what the truth read
        "faults": [
            {"fault": f.get("fault"), "at_s": f.get("at_s")} for f in experiment.get("faults") or []
        ],
    }


def _by_fault(summary: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for fault, seen in (summary.get("by_fault") or {}).items():
        rec, win = seen.get("recovery") or {}, seen.get("window") or {}
        out[fault] = {
            "occurrences": seen.get("occurrences"),
            "time_to_recover_s": _r(rec.get("time_to_recover_s"), 3),
            "first_success_s": _r(rec.get("first_success_s"), 3),
            "availability": _r(win.get("availability"), 4),
            "window_attempts": win.get("attempts"),
            "baseline_availability": _r(win.get("baseline_availability"), 4),
        }
    return out


def _figures(summary: dict[str, Any]) -> dict[str, Any]:
    """The judged figures: verdict, counts, rates, latency, throughput, recovery, fairness."""
    counts = ("sold", "stock_initial", "acknowledged", "attempts", "oversell", "lost_acknowledged")
    more = ("duplicate_purchases", "phantom_orders", "undersold", "gave_up")
    profiles = (summary.get("fairness") or {}).get("profiles") or {}
    return {
        "verdict": summary.get("verdict"),
        **{k: summary.get(k) for k in counts + more},
        "conflict_rate": _r(summary.get("conflict_rate"), 4),
        "p99_ms": _r((summary.get("latency_ms") or {}).get("p99"), 1),
        "throughput_rps": _r(summary.get("throughput_rps"), 1),
        "sellout_s": _r(summary.get("sellout_s"), 3),
        "generator_healthy": (summary.get("generator") or {}).get("healthy"),
        "by_fault": _by_fault(summary),
        "profiles": {
            name: {
                "shopper_share": _r(p.get("shopper_share"), 4),
                "unit_share": _r(p.get("unit_share"), 4),
            }
            for name, p in profiles.items()
        },
    }


def record(run_dir: Path, command: str | None = None, cell: dict[str, Any] | None = None) -> dict:
    """The record of one complete run directory (a UserError naming it otherwise)."""
    try:
        manifest, summary = read_json(run_dir / MANIFEST), read_json(run_dir / SUMMARY)
    except RunDirError as exc:
        raise UserError(str(exc)) from None
    if manifest.get("complete") is not True:
        raise UserError(f"{run_dir}: incomplete run (manifest complete is not true)")
    setup = _setup(manifest.get("experiment") or {})
    recorded = manifest.get("command")
    git = manifest.get("git_revision") or {}
    return {
        "run_id": manifest.get("run_id", run_dir.name),
        "set": run_dir.parent.name if run_dir.name.startswith("trial-") else None,
        "started_at": manifest.get("started_at"),
        "command": recorded or (command or "").replace("{experiment}", str(setup["experiment"])),
        "command_recorded": bool(recorded),
        "revision": (git.get("commit") or "?")[:8] + ("+dirty" if git.get("dirty") else ""),
        "host": _host(manifest, summary),
        **setup,
        **_figures(summary),
        "matrix": None
        if cell is None
        else {k: cell.get(k) for k in ("index", "strategy", "fault", "durability", "expected")},
    }


def extract(paths: list[Path], out: Path, command: str | None = None) -> list[dict[str, Any]]:
    """Write one record per run found under `paths` to `out`, oldest first; return them."""
    rows = [record(d, command, cell) for p in paths for d, cell in run_dirs(p)]
    missing = [r["run_id"] for r in rows if not r["command"]]
    if missing:
        raise UserError(
            f"{', '.join(missing)}: the manifest records no command; pass --command "
            "'flashlab run experiments/{experiment}.yaml' (how those runs were made)"
        )
    rows.sort(key=lambda r: (str(r["started_at"]), r["run_id"]))
    write_jsonl(out, rows)
    return rows
