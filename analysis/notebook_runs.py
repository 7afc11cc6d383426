"""Which cached run a notebook reads: the newest complete `<cache>/<name>-<key>` for a spec name.

`make notebooks` (flashlab.lab.notebooks) makes each run a notebook needs under
`reports/notebook-runs/<name>-<key>`, the key hashing the experiment and the code revision, and
leaves a `notebook-run.json` beside the run's files saying which spec and which revision made
it. A notebook opened by hand knows only the spec names: `newest(name, cache)` finds the newest
complete directory of that name, whatever revision made it, and says which revision that was.
An incomplete directory (a run that was interrupted or failed) is never picked.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC
from datetime import datetime
from pathlib import Path
from typing import Any

from flashlab.core.rundir import MANIFEST
from flashlab.core.rundir import write_json_atomic

CACHE = Path("reports") / "notebook-runs"  # relative to the checkout
SIDECAR = "notebook-run.json"  # written by flashlab.lab.notebooks.ensure next to the run's files
SWEEP_MANIFEST = "sweep.json"  # a sweep directory's manifest (flashlab.analysis.sweep_results)
KEY_RE = "[0-9a-f]{12}"  # flashlab.lab.notebooks.cache_key


@dataclass(frozen=True)
class CachedRun:
    """One complete cached directory (a run or a sweep) of a spec, and what made it."""

    name: str
    path: Path
    finished_at: str  # ISO 8601, UTC
    revision: str  # the code revision that made it ("unknown" for a run from before sidecars)
    synthetic: bool = False  # a stand-in (flashlab.testing.synthetic), whatever its name says

    @property
    def short_revision(self) -> str:
        commit, plus, diff = self.revision.partition("+")
        short = commit[:10] if re.fullmatch("[0-9a-f]{40}", commit) else commit
        return short + (f" + uncommitted changes ({diff})" if plus else "")


def manifest_of(path: Path) -> dict[str, Any] | None:
    """The run's manifest.json, or a sweep's sweep.json; None when neither can be read."""
    for name in (SWEEP_MANIFEST, MANIFEST):
        if (path / name).is_file():
            try:
                data = json.loads((path / name).read_text())
            except (OSError, ValueError):
                return None
            return data if isinstance(data, dict) else None
    return None


def is_complete(path: Path | str) -> bool:
    """A run or sweep directory whose manifest says `complete: true` (written last)."""
    manifest = manifest_of(Path(path))
    return bool(manifest and manifest.get("complete") is True)


def write_sidecar(path: Path, name: str, revision: str, key: str) -> None:
    write_json_atomic(path / SIDECAR, {"spec": name, "revision": revision, "key": key})


def revision_of(path: Path, manifest: dict[str, Any]) -> str:
    """The revision in the sidecar; else the manifest's git commit (marked dirty when it was)."""
    try:
        revision = json.loads((path / SIDECAR).read_text()).get("revision")
    except (OSError, ValueError, AttributeError):
        revision = None
    if isinstance(revision, str) and revision:
        return revision
    git = manifest.get("git_revision") or {}
    commit = git.get("commit") or "unknown"
    return commit + ("+dirty" if git.get("dirty") else "")


def _finished_at(path: Path, manifest: dict[str, Any]) -> str:
    finished = manifest.get("finished_at")
    if isinstance(finished, str) and finished:
        return finished
    mtime = max(p.stat().st_mtime for p in path.iterdir()) if any(path.iterdir()) else 0.0
    return datetime.fromtimestamp(mtime, UTC).isoformat()


def read(path: Path, name: str | None = None) -> CachedRun | None:
    """The directory as a CachedRun (named `name`, default its own name); None when incomplete."""
    manifest = manifest_of(path)
    if not (manifest and manifest.get("complete") is True):
        return None
    return CachedRun(
        name or path.name,
        path,
        _finished_at(path, manifest),
        revision_of(path, manifest),
        bool(manifest.get("synthetic")),
    )


def candidates(name: str, cache: Path | str) -> list[CachedRun]:
    """Every complete cached directory of spec `name` under `cache`, oldest first."""
    cache = Path(cache)
    if not cache.is_dir():
        return []
    pattern = re.compile(re.escape(name) + "-" + KEY_RE)
    runs = [read(p, name) for p in cache.iterdir() if p.is_dir() and pattern.fullmatch(p.name)]
    found = [run for run in runs if run is not None]
    return sorted(found, key=lambda run: (run.finished_at, run.path.name))


def newest(name: str, cache: Path | str) -> CachedRun | None:
    """The newest complete cached directory of spec `name`, or None when there is none."""
    found = candidates(name, cache)
    return found[-1] if found else None
