"""The Compose containers' entrypoint: render a service's config from FLASHLAB_* variables, exec it.

Runs inside the containers (`python -m flashlab.system.platforms.compose_entry exec redis`), so it
imports nothing host-side (no Docker SDK). The configs are the same templates the local platform
renders (system/conf/*.j2), which keeps both platforms' redis, nginx and prometheus identical.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from collections.abc import Mapping

from flashlab.core.errors import UserError
from flashlab.core.platform import durability_problem
from flashlab.system.config import write


class EntryError(UserError, ValueError):
    """A FLASHLAB_* variable given to a container is malformed; the message names it."""


def _csv(env: Mapping[str, str], name: str) -> list[str]:
    items = [item.strip() for item in env.get(name, "").split(",") if item.strip()]
    if not items:
        raise EntryError(f"{name} must list host:port entries, comma-separated")
    return items


def _redis_argv(env: Mapping[str, str]) -> list[str]:
    durability = env.get("FLASHLAB_DURABILITY", "none")
    problem = durability_problem(durability)
    if problem:
        raise EntryError(f"FLASHLAB_DURABILITY: {problem}")
    conf = write("redis.conf", "/tmp/redis.conf", bind="0.0.0.0", port=6379, dir="/data",
                 durability=durability, logfile="")  # fmt: skip
    return ["redis-server", str(conf)]


def _nginx_argv(env: Mapping[str, str]) -> list[str]:
    keepalive = env.get("FLASHLAB_NGINX_KEEPALIVE", "64")
    if not keepalive.isdigit():
        raise EntryError(f"FLASHLAB_NGINX_KEEPALIVE={keepalive!r} is not a non-negative integer")
    workers = env.get("FLASHLAB_NGINX_WORKERS", "auto")
    if workers != "auto" and not workers.isdigit():
        raise EntryError(f"FLASHLAB_NGINX_WORKERS={workers!r} must be 'auto' or an integer")
    conf = write(
        "nginx.conf",
        "/tmp/nginx.conf",
        listen="80",
        upstreams=_csv(env, "FLASHLAB_UPSTREAMS"),
        keepalive=int(keepalive),
        worker_processes=workers,
        pid_file="/run/nginx.pid",
        error_log="stderr",
        temp_dir=None,
        user="www-data",  # Debian's nginx user; nginx's compiled-in "nobody" group does not exist
    )
    return ["nginx", "-e", "stderr", "-c", str(conf)]


def _prometheus_argv(env: Mapping[str, str]) -> list[str]:
    interval = env.get("FLASHLAB_PROMETHEUS_INTERVAL", "1s")
    targets = _csv(env, "FLASHLAB_PROMETHEUS_TARGETS")
    conf = write("prometheus.yml", "/tmp/prometheus.yml", targets=targets, interval=interval)
    return ["prometheus", f"--config.file={conf}", "--storage.tsdb.path=/prometheus",
            "--web.listen-address=0.0.0.0:9090"]  # fmt: skip


# service -> renders its config, returns the server's argv. A new service is one function + one line.
ENTRYPOINTS: dict[str, Callable[[Mapping[str, str]], list[str]]] = {
    "redis": _redis_argv,
    "nginx": _nginx_argv,
    "prometheus": _prometheus_argv,
}


def main(argv: list[str] | None = None) -> int:
    """`exec SERVICE`: render the service's config from the environment and exec the server."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2 or args[0] != "exec" or args[1] not in ENTRYPOINTS:
        services = ",".join(ENTRYPOINTS)
        print(
            f"usage: python -m flashlab.system.platforms.compose_entry exec {{{services}}}",
            file=sys.stderr,
        )
        return 2
    try:
        server = ENTRYPOINTS[args[1]](os.environ)
    except EntryError as exc:
        print(f"flashlab {args[1]}: {exc}", file=sys.stderr)
        return 2
    sys.stdout.flush()
    os.execvp(server[0], server)  # the server replaces us as the container's main process
    return 0  # not reached


if __name__ == "__main__":
    raise SystemExit(main())
