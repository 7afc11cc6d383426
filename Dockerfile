# flashlab images, built with NO image registry (scripts/build-images.sh; docs/COMPOSE.md).
# One app image runs the api workers, redis, nginx and the fault proxy (different commands per
# service); the prometheus target adds the Prometheus server on top of it.
# Offline by default: BASE is a debootstrap'd Debian bookworm imported as flashlab-base:bookworm.
# Where a registry is reachable: --build-arg BASE=debian:bookworm-slim works the same.
# Build with --network host: RUN steps fetch Debian packages from the host's mirror; Python
# packages come only from the host-built wheelhouse (containers cannot reach PyPI).
ARG BASE=flashlab-base:bookworm

FROM ${BASE} AS os
ENV DEBIAN_FRONTEND=noninteractive LANG=C.UTF-8
RUN apt-get update -qq \
 && apt-get install -y -qq --no-install-recommends python3 python3-venv ca-certificates >/dev/null \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/*.deb
# The one venv installer of every stage below (scripts/image-venv.sh, staged by build-images.sh):
# `image-venv DIR...` creates /opt/flashlab and installs each wheel directory into it offline.
COPY .wheelhouse/bin/image-venv /usr/local/bin/
# How Python runs in every image (the venv stages and the runtime images alike).
ENV PATH=/opt/flashlab/bin:$PATH PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1

# Wheels are installed in a throwaway stage, so the wheelhouse never becomes an image layer.
FROM os AS venv
COPY .wheelhouse/deps/ /wheels/deps/
RUN image-venv /wheels/deps
# The project last, in a layer of its own: editing code rebuilds only this layer. image-venv
# installs it --no-deps: its full dependency list (ray, pandas, ...) is for the host lab.
COPY .wheelhouse/project/ /wheels/project/
RUN image-venv /wheels/project

# Shared tail of both runtime images: the venv (how Python runs comes with `os`).
FROM os AS app
RUN apt-get update -qq \
 && apt-get install -y -qq --no-install-recommends redis-server nginx-light >/dev/null \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/*.deb \
 && mkdir -p /data
COPY --from=venv /opt/flashlab /opt/flashlab
WORKDIR /data
EXPOSE 8000
# The api service's command (docker-compose.yml sets each service's own).
# Mirrors flashlab.system.config.uvicorn_argv: keep-alive 75 s outlives nginx upstream keepalive_timeout 60 s.
CMD ["python", "-m", "uvicorn", "flashlab.system.api.app:create_app", "--factory", "--host", "0.0.0.0", "--port", "8000", "--loop", "uvloop", "--http", "httptools", "--timeout-keep-alive", "75", "--no-access-log", "--log-level", "warning"]

# From `os`, not `app`: a code change then reuses the cached prometheus package layer.
# The venv is here only to render prometheus.yml from the shared template at start.
FROM os AS prometheus
# libjs-moment-timezone is 220 MB of timezone data for the web UI's graphs only; the scrape
# loop and the HTTP API (all the lab uses) run without it.
RUN apt-get update -qq \
 && apt-get install -y -qq --no-install-recommends prometheus >/dev/null \
 && dpkg --remove --force-depends libjs-moment-timezone >/dev/null \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/*.deb
COPY --from=venv /opt/flashlab /opt/flashlab
EXPOSE 9090
CMD ["python", "-m", "flashlab.system.platforms.compose_entry", "exec", "prometheus"]

# --- the `ray` profile (docker-compose.yml): a Ray head and a Ray worker that run the shoppers ---
# Last in the file, so building app/prometheus never needs the Ray wheelhouse (the classic
# builder stops at its target). A venv of its own from .wheelhouse/ray (built only by
# `scripts/build-images.sh --ray`): Ray and what the shoppers import (numpy, pyarrow, ...) stay
# out of the lean app image.
FROM os AS ray-venv
COPY .wheelhouse/ray/ /wheels/ray/
COPY .wheelhouse/project/ /wheels/project/
# One layer for both, unlike `venv`: a code edit reinstalls the whole Ray venv from the local
# wheels - measured 52 s for this target on a shared 2-core machine (the app target: 5 s) - the
# price of not keeping a near-copy of the `venv` stage's two steps.
RUN image-venv /wheels/ray /wheels/project

FROM os AS ray
COPY --from=ray-venv /opt/flashlab /opt/flashlab
ENV RAY_USAGE_STATS_ENABLED=0
WORKDIR /tmp
CMD ["ray", "start", "--head", "--block", "--include-dashboard=false", "--disable-usage-stats"]
