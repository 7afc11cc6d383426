"""flashlab installed from its wheel, outside the repository: one import name, shipped experiments by name.

The wheel is built from a copy of the sources (so the checkout gets no build/ or egg-info), with
--no-build-isolation (the dev extra brings setuptools, so nothing is downloaded). It goes into a
fresh venv in a tmp folder with --no-deps; that venv finds the *dependencies* through a .pth file
naming this project's site-packages - offline and in seconds, where resolving ~100 packages from
an index would take minutes. Only the path line of that .pth is honoured: .pth files inside the
added directory are not processed, so the checkout's editable finder stays off and `flashlab`
imports from the wheel (asserted). Every command then runs from a tmp cwd, far from the repo.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# What the wheel is built from: the package (flashlab/ and the folders linked under it) plus metadata.
SOURCES = ("pyproject.toml", "README.md", "flashlab", "system", "simulator", "chaos", "analysis")
SOURCES += ("bench", "experiments")


def build_wheel(tmp: Path) -> Path:
    src = tmp / "src"
    src.mkdir()
    for name in SOURCES:
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(
                path, src / name, symlinks=True, ignore=shutil.ignore_patterns("__pycache__")
            )
        else:
            shutil.copy2(path, src / name)
    dist = tmp / "dist"
    cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q"]
    done = subprocess.run(
        [*cmd, "-w", str(dist), str(src)], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    (wheel,) = dist.glob("flashlab-*.whl")
    return wheel


def make_venv(tmp: Path, wheel: Path) -> Path:
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    pip = [sys.executable, "-m", "pip", "--python", str(python)]
    done = subprocess.run(
        [*pip, "install", "-q", "--no-deps", str(wheel)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    # The dependencies: this project's site-packages, appended after the venv's own.
    (Path(site) / "flashlab-test-deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return venv


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("wheel")
    wheel = build_wheel(tmp)
    return wheel, make_venv(tmp, wheel)


def run(venv: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(venv / "bin" / "flashlab"), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_wheel_has_one_top_level_name_and_ships_the_experiments(
    installed: tuple[Path, Path],
) -> None:
    wheel, _venv = installed
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        (top_level,) = [n for n in names if n.endswith(".dist-info/top_level.txt")]
        assert zf.read(top_level).decode().split() == ["flashlab"]
    roots = {n.split("/")[0] for n in names}
    assert roots == {"flashlab", top_level.split("/")[0]}  # the package and its .dist-info
    assert "flashlab/experiments/smoke.yaml" in names
    assert "flashlab/system/conf/nginx.conf.j2" in names


def test_flashlab_imports_from_the_wheel_not_the_checkout(
    installed: tuple[Path, Path], tmp_path: Path
) -> None:
    _wheel, venv = installed
    done = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import flashlab; print(flashlab.__file__)"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    )
    assert Path(done.stdout.strip()).is_relative_to(venv), done.stdout


def test_experiments_lists_the_shipped_ones(installed: tuple[Path, Path], tmp_path: Path) -> None:
    _wheel, venv = installed
    done = run(venv, tmp_path, "experiments", "--json")
    assert done.returncode == 0, done.stderr
    rows = {row["name"]: row for row in json.loads(done.stdout)}
    shipped = {p.stem for p in (ROOT / "experiments").glob("*.yaml")}
    assert set(rows) == shipped
    assert rows["smoke"]["description"]
    assert Path(rows["smoke"]["path"]).is_relative_to(venv)


def test_run_smoke_by_name_from_outside_the_repo(
    installed: tuple[Path, Path], tmp_path: Path
) -> None:
    _wheel, venv = installed
    done = run(venv, tmp_path, "run", "smoke", "--shoppers", "50", "--stock", "10", "--json")
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    summary = json.loads(done.stdout)
    assert summary["verdict"] == "pass"
    run_dir = Path(summary["run_dir"])
    if not run_dir.is_absolute():
        run_dir = tmp_path / run_dir
    assert run_dir.parent == tmp_path / "reports"  # ./reports of the working directory
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["complete"] is True
    assert (run_dir / "summary.json").exists()


def test_unknown_name_is_one_line_with_close_names(
    installed: tuple[Path, Path], tmp_path: Path
) -> None:
    _wheel, venv = installed
    done = run(venv, tmp_path, "run", "smok")
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "did you mean smoke" in lines[0], done.stderr
    assert not (tmp_path / "reports").exists()


def test_compose_outside_a_checkout_says_so_in_one_line(
    installed: tuple[Path, Path], tmp_path: Path
) -> None:
    _wheel, venv = installed
    done = run(venv, tmp_path, "run", "smoke", "--platform", "compose")
    assert done.returncode == 2, done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "needs a flashlab checkout" in lines[0], done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "reports").exists()
