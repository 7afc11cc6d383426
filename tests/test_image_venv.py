"""scripts/image-venv.sh, the Dockerfile's one venv installer, run on the host against a tmp venv.

The script is the same file the images run (build-images.sh stages it unchanged); only the venv
path differs, through FLASHLAB_IMAGE_VENV, so the tests never touch /opt/flashlab. The wheels are
tiny real wheels written here and installed by the real pip, offline, as in the images. The image
builds themselves are proven by the Compose tests (tests/test_compose*.py, marker `compose`).
"""

from __future__ import annotations

import base64
import hashlib
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
IMAGE_VENV = ROOT / "scripts" / "image-venv.sh"


def write_wheel(folder: Path, name: str, requires: tuple[str, ...] = ()) -> Path:
    """A minimal valid pure-Python wheel of package `name` (version 1.0) with a RECORD."""
    folder.mkdir(parents=True, exist_ok=True)
    info = f"{name}-1.0.dist-info"
    metadata = f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n"
    metadata += "".join(f"Requires-Dist: {req}\n" for req in requires)
    files = {
        f"{name}/__init__.py": f"NAME = {name!r}\n",
        f"{info}/METADATA": metadata,
        f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = []
    for path, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=")
        record.append(f"{path},sha256={digest.decode()},{len(text.encode())}")
    record.append(f"{info}/RECORD,,")
    files[f"{info}/RECORD"] = "\n".join(record) + "\n"
    wheel = folder / f"{name}-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for path, text in files.items():
            archive.writestr(path, text)
    return wheel


def image_venv(venv: Path, *dirs: Path) -> subprocess.CompletedProcess[str]:
    # python3 on PATH: the base interpreter of the test venv (Debian's python3 in the images).
    env = {
        "PATH": f"{Path(sys.base_prefix) / 'bin'}:/usr/bin:/bin",
        "FLASHLAB_IMAGE_VENV": str(venv),
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
    }
    return subprocess.run(
        ["sh", str(IMAGE_VENV), *map(str, dirs)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_deps_then_project_install_offline_and_the_project_without_its_deps(
    tmp_path: Path,
) -> None:
    deps = tmp_path / "deps"
    write_wheel(deps, "tinydep")
    (deps / "requirements.txt").write_text("tinydep\n")
    project = tmp_path / "project"
    # Its dependency exists nowhere: only --no-deps lets this install succeed.
    write_wheel(project, "tinyproj", requires=("not-on-this-machine>=1",))
    venv = tmp_path / "venv"

    done = image_venv(venv, deps, project)

    assert done.returncode == 0, done.stderr
    python = venv / "bin" / "python"
    probe = "import tinydep, tinyproj; print(tinydep.NAME, tinyproj.NAME)"
    out = subprocess.run([python, "-c", probe], capture_output=True, text=True, timeout=60)
    assert out.stdout.split() == ["tinydep", "tinyproj"], out.stderr


def test_a_second_call_adds_to_the_existing_venv(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    first = tmp_path / "first"
    write_wheel(first, "tinyfirst")
    assert image_venv(venv, first).returncode == 0
    second = tmp_path / "second"
    write_wheel(second, "tinysecond")

    done = image_venv(venv, second)

    assert done.returncode == 0, done.stderr
    probe = "import tinyfirst, tinysecond"
    out = subprocess.run([venv / "bin" / "python", "-c", probe], capture_output=True, timeout=60)
    assert out.returncode == 0, out.stderr


@pytest.mark.parametrize(
    ("layout", "message"),
    [
        ("none", "usage: image-venv DIR..."),
        ("missing", "missing: no such directory"),
        ("empty", "empty: neither requirements.txt nor a *.whl to install"),
        ("good-then-empty", "empty: neither requirements.txt nor a *.whl to install"),
    ],
)
def test_bad_dirs_are_one_line_exit_2_and_no_venv(
    tmp_path: Path, layout: str, message: str
) -> None:
    (tmp_path / "empty").mkdir()
    write_wheel(tmp_path / "good", "tinygood")
    dirs = {
        "none": [],
        "missing": [tmp_path / "missing"],
        "empty": [tmp_path / "empty"],
        "good-then-empty": [tmp_path / "good", tmp_path / "empty"],
    }[layout]
    venv = tmp_path / "venv"

    done = image_venv(venv, *dirs)

    assert done.returncode == 2
    assert len(done.stderr.splitlines()) == 1 and message in done.stderr, done.stderr
    # Every DIR is checked first: a bad one leaves no half-filled venv behind.
    assert not venv.exists()
