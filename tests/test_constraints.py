"""constraints.txt drives the install: it pins every dependency pyproject.toml names, inside its range.

scripts/bootstrap.sh installs with `-c constraints.txt` (so `make demo` and `make test` get the
same versions on every machine); `make lock` (scripts/lock.sh) refreshes it. A pin outside its
range, or a dependency added to pyproject.toml without a pin, fails here before it reaches a user.
"""

from __future__ import annotations

import os
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent


def _pins() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            assert version, f"constraints.txt: {line!r} is not an exact pin (NAME==VERSION)"
            pins[canonicalize_name(name)] = version
    return pins


def _requirements() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = [Requirement(r) for r in project["dependencies"]]
    for extra in project["optional-dependencies"].values():
        reqs += [Requirement(r) for r in extra if not r.startswith("flashlab[")]
    return reqs


@pytest.mark.parametrize("req", _requirements(), ids=str)
def test_every_dependency_is_pinned_inside_its_range(req: Requirement) -> None:
    if req.marker is not None and not req.marker.evaluate():
        pytest.skip(f"{req.name} is not for this platform ({req.marker})")
    pins = _pins()
    name = canonicalize_name(req.name)
    assert name in pins, f"{req.name} is not pinned in constraints.txt: run `make lock`"
    assert req.specifier.contains(pins[name], prereleases=True), (
        f"constraints.txt pins {req.name}=={pins[name]}, outside {req.specifier}: run `make lock`"
    )


def _python_floor() -> str:
    """The oldest Python pyproject.toml admits, as a full version (`>=3.11` -> 3.11.0)."""
    spec = SpecifierSet(
        tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    )
    floor = min((s.version for s in spec if s.operator == ">="), key=Version)
    return floor + ".0" * (2 - floor.count("."))


def test_every_pin_installs_on_the_oldest_python_the_project_admits() -> None:
    """A pin resolved on a newer interpreter can need more than `requires-python` promises
    (soupsieve 4.1.4 needs 3.11.5; Debian bookworm's python3 is 3.11.2, and a clean install there
    failed). Read from the installed distributions, which bootstrap took from constraints.txt."""
    floor, pins = _python_floor(), _pins()
    checked, too_new = 0, []
    for dist in metadata.distributions():
        name = canonicalize_name(dist.metadata["Name"])
        if pins.get(name) != dist.version:
            continue  # not a pin (the project itself, pip), or installed from elsewhere
        checked += 1
        requires = dist.metadata.get("Requires-Python")
        if requires and floor not in SpecifierSet(requires):
            too_new.append(f"{name}=={dist.version} (Requires-Python {requires})")
    assert checked > len(pins) // 2, f"only {checked} of {len(pins)} pins are installed here"
    assert not too_new, (
        f"need a newer Python than {floor}; cap them in scripts/lock-caps.txt: {too_new}"
    )


def test_lock_resolves_under_the_caps_and_checks_the_floor() -> None:
    script = (ROOT / "scripts" / "lock.sh").read_text()
    assert '-c scripts/lock-caps.txt ".[all]"' in script
    assert "Requires-Python" in script


def test_bootstrap_installs_with_the_constraints() -> None:
    script = (ROOT / "scripts" / "bootstrap.sh").read_text()
    assert '-c constraints.txt -e ".[$EXTRAS]"' in script
    assert "constraints.txt" in script.split("hash=", 1)[1].splitlines()[0]  # a new pin reinstalls


def test_the_cli_refuses_a_non_posix_system_in_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from flashlab import cli

    monkeypatch.setattr(os, "name", "nt")
    with pytest.raises(SystemExit) as exit_info:
        cli.main()
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == "error: flashlab needs a POSIX system (Linux or macOS)\n"
