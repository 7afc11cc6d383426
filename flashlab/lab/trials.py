"""Repeated trials: N seeded runs of one experiment on ONE stack, written as a trial-set directory.

The stack is started once (`flashlab.lab.stacks.shared_stack`); every trial is a complete run directory
(`flashlab.lab.run.execute` on that stack, which resets the product first), with the seed derived
as `flashlab.analysis.trials.trial_seed` (base seed + i - 1: reproducible, and each trial
differs). The set manifest (trialset.json) is written first with `complete: false`, updated as
trials finish, and flipped to `complete: true` last, after trials.parquet/json/html: an
interrupted set never looks complete. Judging the set is flashlab.analysis.trials' job.
"""

from __future__ import annotations

from contextlib import ExitStack
from contextlib import nullcontext
from dataclasses import dataclass
from dataclasses import field
from datetime import UTC
from datetime import datetime
from pathlib import Path
from typing import Any

from flashlab.analysis.outputs import write_set_outputs
from flashlab.analysis.trials import SEED_RULE
from flashlab.analysis.trials import SET_MANIFEST
from flashlab.analysis.trials import trial_name
from flashlab.analysis.trials import trial_seed
from flashlab.core import rundir
from flashlab.core.errors import UserError
from flashlab.core.errors import verdict_exit_code
from flashlab.core.provenance import provenance
from flashlab.lab.events import Announcer
from flashlab.lab.events import Phase
from flashlab.lab.experiment import Experiment
from flashlab.lab.outcome import RunOutcome
from flashlab.lab.remote import check_target
from flashlab.lab.run import ExperimentRequest
from flashlab.lab.run import RunRequest
from flashlab.lab.run import execute
from flashlab.lab.rundirs import new_run_id
from flashlab.lab.rundirs import prepare_out_dir
from flashlab.lab.rundirs import record_failure
from flashlab.lab.stacks import shared_stack

MAX_REPEAT = 100


@dataclass
class TrialSetRequest(ExperimentRequest):
    # `events` hear the set and every trial's run.
    repeat: int = field(kw_only=True)
    set_dir: Path | None = None  # exact directory (--out); default out_root/<set-id>


@dataclass
class TrialSetOutcome:
    set_dir: Path
    result: dict[str, Any]  # trials.json
    exit_code: int
    outcomes: list[RunOutcome] = field(default_factory=list)


def check_repeat(repeat: int, flag: str = "--repeat") -> None:
    if not 1 <= repeat <= MAX_REPEAT:
        raise UserError(f"{flag}: must be between 1 and {MAX_REPEAT} trials (got {repeat})")


def new_set_id(experiment: Experiment, repeat: int) -> str:
    return new_run_id(experiment, tag=f"x{repeat}")


def _set_manifest(req: TrialSetRequest, set_id: str) -> dict[str, Any]:
    exp = req.experiment
    return {
        "kind": "trial-set",
        "set_id": set_id,
        "complete": False,
        "repeat": req.repeat,
        "seed_rule": SEED_RULE,
        "seeds": [trial_seed(exp.seed, i) for i in range(1, req.repeat + 1)],
        "trials": [],  # names of the trials written so far
        **provenance(exp.model_dump(mode="json")),
    }


def trial_experiment(base: Experiment, index: int) -> Experiment:
    """Trial `index` (1-based): the same experiment with its derived seed, as one run."""
    return base.model_copy(update={"seed": trial_seed(base.seed, index), "repeat": 1})


def run_trials(req: TrialSetRequest, stack: Any = None) -> TrialSetOutcome:
    """Run the set end to end. Raises UserError for bad input; anything else propagates,
    leaving trialset.json `complete: false` with the error.

    `stack`: a stack from `shared_stack` to run every trial on (a sweep's); default: start one."""
    check_repeat(req.repeat)
    exp = req.experiment
    events = Announcer(req.events)
    check_target(exp, req.target, events.note, req.allow_remote)
    set_id = new_set_id(exp, req.repeat)
    set_dir = prepare_out_dir(req.set_dir, req.out_root, set_id)
    manifest = _set_manifest(req, set_id)
    path = set_dir / SET_MANIFEST
    rundir.write_json_atomic(path, manifest)
    try:
        outcomes = _run_all(req, events, set_dir, manifest, stack)
        with events.phase(Phase("judge-set", "judging the trial set")):
            result = write_set_outputs(set_dir)
    except BaseException as exc:
        record_failure(path, manifest, exc)
        raise
    manifest["finished_at"] = datetime.now(UTC).isoformat()
    manifest["verdict"] = result["verdict"]
    manifest["complete"] = True
    rundir.write_json_atomic(path, manifest)
    return TrialSetOutcome(set_dir, result, verdict_exit_code(result["verdict"]), outcomes)


def _run_all(
    req: TrialSetRequest,
    events: Announcer,
    set_dir: Path,
    manifest: dict[str, Any],
    given: Any = None,
) -> list[RunOutcome]:
    exp = req.experiment
    outcomes = []
    with ExitStack() as scope:
        if given is not None:
            stack = scope.enter_context(nullcontext(given))
        else:
            with events.phase(Phase("shared-stack", "starting stack (shared by every trial)")):
                stack = scope.enter_context(shared_stack(exp, req.target))
        manifest["stack"] = stack.public
        for index in range(1, req.repeat + 1):
            trial = trial_experiment(exp, index)
            events.trial_started(index, req.repeat, trial.seed)
            name = trial_name(index)
            run_req = RunRequest(
                experiment=trial,
                run_dir=set_dir / name,
                target=req.target,
                write_report=req.write_report,
                allow_remote=req.allow_remote,
                events=req.events,
                manifest_extra={
                    "trial": {"set_id": manifest["set_id"], "index": index, "of": req.repeat}
                },
            )
            outcome = execute(run_req, stack=stack)
            outcomes.append(outcome)
            manifest["trials"].append(name)
            rundir.write_json_atomic(set_dir / SET_MANIFEST, manifest)
            events.trial_finished(index, outcome)
    return outcomes
