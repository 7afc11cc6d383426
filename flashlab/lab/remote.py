"""Where a run may send load: loopback unless the user says otherwise, and the plan said first.

A run loads an already-running stack (`--target/--redis`, a `Target`) or a target file's
`base_url` only on loopback addresses (127.0.0.0/8, ::1, localhost) unless `--allow-remote`;
with it, the load plan (`load_plan`) is printed before anything is sent. `check_target` runs
before anything is started, so a refusal costs no traffic at all.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from flashlab.core.errors import UserError
from flashlab.core.target import TargetSpec
from flashlab.lab.experiment import Experiment


@dataclass(frozen=True)
class Target:
    """An already-running stack (`--target/--redis`): the lab resets and loads it but starts nothing."""

    base_url: str
    redis_url: str
    admin_token: str
    # `--allow-remote`: a non-loopback target is the user's explicit choice (never a default).
    allow_remote: bool = False


def is_loopback_url(url: str) -> bool:
    """True when the URL's host is loopback (127.0.0.0/8, ::1, localhost); no name is resolved."""
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a DNS name other than localhost: could be anywhere


def require_loopback(url: str, flag: str) -> None:
    """Load goes only to loopback: refuse anything else with a one-line error naming the flag."""
    if not is_loopback_url(url):
        raise UserError(
            f"{flag}: {url!r} is not a loopback address (127.0.0.0/8, ::1, localhost); "
            "pass --allow-remote to load a remote stack on purpose"
        )


def load_plan(exp: Experiment, target: Target) -> str:
    """What a run will send to `target` and how hard: printed before a run with --allow-remote."""
    sc = exp.scenario
    arrival = sc.arrival.model_dump(mode="json")
    shape = ", ".join(f"{k}={v}" for k, v in arrival.items() if k != "kind")
    runs = f" x {exp.repeat} trials" if exp.repeat > 1 else ""
    return (
        f"remote load plan: {sc.shoppers} shoppers{runs} ({sc.model} model, arrival "
        f"{arrival.get('kind')}{f': {shape}' if shape else ''}), at most {sc.duration_s:g}s, "
        f"up to {max(p.max_attempts for p in sc.profiles)} attempts each, "
        f"product {exp.product.id!r} reset to stock {exp.product.stock} -> target "
        f"{target.base_url} (redis {urlsplit(target.redis_url).hostname})"
    )


def check_target(
    exp: Experiment,
    target: Target | None,
    on_note: Callable[[str], None],
    allow_remote: bool = False,
) -> None:
    """Refuse a non-loopback --target/--redis (or a target file's base_url) unless
    --allow-remote; with it, say the plan first.

    Called before anything is started or sent, so a refusal costs no traffic at all."""
    if exp.target is not None:
        _check_target_file(exp, exp.target, on_note, allow_remote)
    if target is None:
        return
    if exp.faults:
        raise UserError("--target: faults need a stack the lab started itself (drop --target)")
    if target.allow_remote:
        on_note(load_plan(exp, target))
        return
    require_loopback(target.base_url, "--target")
    require_loopback(target.redis_url, "--redis")


def _check_target_file(
    exp: Experiment, spec: TargetSpec, on_note: Callable[[str], None], allow_remote: bool
) -> None:
    """A target the lab starts listens on loopback ports it picked; one it only reaches (no
    `start:`) must be on loopback unless --allow-remote."""
    if spec.start is not None or is_loopback_url(spec.base_url):
        return
    if not allow_remote:
        require_loopback(spec.base_url, f"{spec.file or spec.name}: base_url")
    sc = exp.scenario
    on_note(
        f"remote load plan: {sc.shoppers} shoppers ({sc.model} model), at most "
        f"{sc.duration_s:g}s, product {exp.product.id!r} reset to stock {exp.product.stock} "
        f"-> target {spec.name} at {spec.base_url}"
    )
