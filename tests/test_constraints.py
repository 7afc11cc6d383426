"""constraints.txt drives the install: it pins every dependency pyproject.toml names, inside its range.

scripts/bootstrap.sh installs with `-c constraints.txt` (so `make demo` and `make test` get the
same versions on every machine); `make lock` (scripts/lock.sh) refreshes it. A pin outside its
range, or a dependency added to pyproject.toml without a pin, fails here before it reaches a user.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

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
