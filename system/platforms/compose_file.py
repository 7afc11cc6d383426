"""The per-stack compose file: the repository's docker-compose.yml with exactly N api services.

docker-compose.yml declares the api service once (api-0, the template every worker copies);
`derive_compose` makes api-0..api-N-1, has nginx depend on all of them and pins every service to
the stack's CPUs; `write_compose` writes the result into the stack's workdir, where
docker-compose reads it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from flashlab.core.platform import PlatformConfigError
from flashlab.core.platform import StackStartError
from flashlab.system.platforms.images import REPO_ROOT

# Next to the Dockerfile the images build from.
COMPOSE_FILE = REPO_ROOT / "docker-compose.yml"


def api_services(workers: int) -> list[str]:
    return [f"api-{i}" for i in range(workers)]


def derive_compose(
    base: dict[str, Any], workers: int, cpus: list[int] | None = None
) -> dict[str, Any]:
    """The repository's compose document with exactly `workers` api services (api-0..api-N-1).

    api-0 is the template (YAML anchors are already expanded by the loader); nginx depends on
    every worker. Upstream and scrape-target lists are passed as environment variables. `cpus`
    (flashlab.core.isolation) becomes every service's `cpuset`, e.g. "0" or "0,1"."""
    if workers < 1:
        raise PlatformConfigError(f"workers must be >= 1 (got {workers})")
    doc = {k: v for k, v in base.items() if not k.startswith("x-")}
    services = dict(doc["services"])
    template = services["api-0"]
    for name in [s for s in services if s.startswith("api-")]:
        del services[name]
    for name in api_services(workers):
        env = {**template["environment"], "FLASHLAB_WORKER_ID": name, "FLASHLAB_METRICS_ID": name}
        spec = {**template, "environment": env}
        services[name] = spec
    nginx = dict(services["nginx"])
    nginx["depends_on"] = api_services(workers)
    services["nginx"] = nginx
    if cpus:
        cpuset = ",".join(str(c) for c in sorted(cpus))
        services = {name: {**spec, "cpuset": cpuset} for name, spec in services.items()}
    doc["services"] = services
    return doc


def write_compose(workdir: Path, workers: int, cpus: list[int] | None = None) -> Path:
    """Derive this stack's compose file from COMPOSE_FILE and write it to `workdir`; its path."""
    if not COMPOSE_FILE.exists():
        raise StackStartError(
            f"{COMPOSE_FILE} not found: the compose platform needs a flashlab checkout"
        )
    doc = derive_compose(yaml.safe_load(COMPOSE_FILE.read_text()), workers, cpus)
    path = workdir / "docker-compose.yml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path
