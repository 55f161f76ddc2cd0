# syntax=docker/dockerfile:1
# The images of ticklake's four programs: one Dockerfile, one target each.
# Build from the repository root (the uv workspace and its lockfile):
#   docker build --target query-api -t ticklake-query-api .
# Targets: producer, ingest, query-api, operator. Without Docker or a
# registry, `make images` builds them with podman (docs/images.md).
#
# Stages: "workspace" holds uv and the lockfile; "<target>-venv" installs one
# package and its locked dependencies into a virtualenv and trims it; the
# target copies only that virtualenv onto "runtime", so uv, caches, sources
# and build tools stay behind. The venv lives at the same path in every stage
# because its scripts point at their interpreter by absolute path.
#
# The package index is reached with the builder's own settings: an optional
# pip.conf, uv.toml and CA bundle given as build secrets (for a private index
# or a TLS-intercepting proxy) are mounted for the RUN that needs them and
# are never part of a layer.

FROM python:3.11-slim AS workspace
# binutils: `strip` for the venv's shared libraries (tools/images/slim_venv.py);
# a build-stage tool whose version never reaches an image, hence unpinned.
# hadolint ignore=DL3008
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends binutils \
    && apt-get clean \
    && rm -rf /var/lib/apt/lists/*
# uv from PyPI, pinned, in a venv of its own, so the build needs only the
# package registry and nothing is installed into the base's Python.
RUN --mount=type=secret,id=pip.conf,target=/etc/pip.conf \
    --mount=type=secret,id=ca-bundle,target=/etc/ssl/certs/ca-certificates.crt \
    python3 -m venv /opt/uv \
    && /opt/uv/bin/pip install --no-cache-dir uv==0.13.9
ENV PATH=/opt/uv/bin:$PATH \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/opt/ticklake/venv
WORKDIR /src
# Dependencies first (they change less often than the code): every member's
# pyproject.toml is needed for uv to check the lockfile, no sources yet.
COPY pyproject.toml uv.lock ./
COPY libs/core/pyproject.toml libs/core/
COPY libs/devstack/pyproject.toml libs/devstack/
COPY services/producer/pyproject.toml services/producer/
COPY services/ingest/pyproject.toml services/ingest/
COPY services/query-api/pyproject.toml services/query-api/
COPY operator/pyproject.toml operator/
COPY tools/images/slim_venv.py /usr/local/bin/slim-venv

# One venv stage per program: its locked dependencies (a layer of their own,
# reused while uv.lock is unchanged), then ticklake-core and the program
# itself installed (not editable), then files no program needs at run time
# removed (tools/images/slim_venv.py says which and why).
FROM workspace AS producer-venv
RUN --mount=type=secret,id=uv.toml,target=/etc/uv/uv.toml \
    --mount=type=secret,id=ca-bundle,target=/etc/ssl/certs/ca-certificates.crt \
    uv sync --frozen --no-dev --no-install-workspace --package ticklake-producer
COPY libs/core libs/core
COPY services/producer services/producer
RUN --mount=type=secret,id=uv.toml,target=/etc/uv/uv.toml \
    --mount=type=secret,id=ca-bundle,target=/etc/ssl/certs/ca-certificates.crt \
    uv sync --frozen --no-dev --no-editable --package ticklake-producer \
    && python3 /usr/local/bin/slim-venv /opt/ticklake/venv

FROM workspace AS ingest-venv
RUN --mount=type=secret,id=uv.toml,target=/etc/uv/uv.toml \
    --mount=type=secret,id=ca-bundle,target=/etc/ssl/certs/ca-certificates.crt \
    uv sync --frozen --no-dev --no-install-workspace --package ticklake-ingest
COPY libs/core libs/core
COPY services/ingest services/ingest
RUN --mount=type=secret,id=uv.toml,target=/etc/uv/uv.toml \
    --mount=type=secret,id=ca-bundle,target=/etc/ssl/certs/ca-certificates.crt \
    uv sync --frozen --no-dev --no-editable --package ticklake-ingest \
    && python3 /usr/local/bin/slim-venv /opt/ticklake/venv

FROM workspace AS query-api-venv
RUN --mount=type=secret,id=uv.toml,target=/etc/uv/uv.toml \
    --mount=type=secret,id=ca-bundle,target=/etc/ssl/certs/ca-certificates.crt \
    uv sync --frozen --no-dev --no-install-workspace --package ticklake-query-api
COPY libs/core libs/core
COPY services/query-api services/query-api
RUN --mount=type=secret,id=uv.toml,target=/etc/uv/uv.toml \
    --mount=type=secret,id=ca-bundle,target=/etc/ssl/certs/ca-certificates.crt \
    uv sync --frozen --no-dev --no-editable --package ticklake-query-api \
    && python3 /usr/local/bin/slim-venv /opt/ticklake/venv

FROM workspace AS operator-venv
RUN --mount=type=secret,id=uv.toml,target=/etc/uv/uv.toml \
    --mount=type=secret,id=ca-bundle,target=/etc/ssl/certs/ca-certificates.crt \
    uv sync --frozen --no-dev --no-install-workspace --package ticklake-operator
COPY libs/core libs/core
COPY operator operator
RUN --mount=type=secret,id=uv.toml,target=/etc/uv/uv.toml \
    --mount=type=secret,id=ca-bundle,target=/etc/ssl/certs/ca-certificates.crt \
    uv sync --frozen --no-dev --no-editable --package ticklake-operator \
    && python3 /usr/local/bin/slim-venv /opt/ticklake/venv

# What every program's image shares: python:3.11-slim with the ticklake user,
# then trimmed of what no program uses at run time (apt, Perl, bash, docs;
# tools/images/trim_runtime.sh says what and why) and flattened into one
# layer, since files deleted in a layer above would still be shipped below.
FROM python:3.11-slim AS runtime-root
# A fixed non-root UID/GID; the chart's securityContext uses the same number.
# The lake's mount point belongs to it, so a fresh docker volume mounted there
# (compose.yaml) is writable too.
RUN groupadd --system --gid 10001 ticklake \
    && useradd --system --uid 10001 --gid ticklake --no-create-home \
       --home-dir /tmp --shell /usr/sbin/nologin ticklake \
    && install -d -o 10001 -g 10001 /var/lib/ticklake/lake
COPY tools/images/trim_runtime.sh /usr/local/sbin/trim-runtime
RUN sh /usr/local/sbin/trim-runtime && rm /usr/local/sbin/trim-runtime

FROM scratch AS runtime
# Copying the whole filesystem is the point here: it is what flattens the
# trimmed base. A stage's root holds no /proc or /sys contents to carry over.
# hadolint ignore=DL3067
COPY --from=runtime-root / /
# The flattened copy keeps files, not the base's ENV: PATH is spelled out
# (the official image's Python is in /usr/local/bin, the stand-in's in
# /usr/bin) and LANG is the base's.
ENV PATH=/opt/ticklake/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    LANG=C.UTF-8 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    TICKLAKE_HTTP_HOST=0.0.0.0
# The working directory is writable too (DuckDB spills to ./.tmp by default).
WORKDIR /tmp
USER 10001:10001

# The programs. HEALTHCHECK is for docker and compose (Kubernetes uses the
# chart's probes instead): the program's own /healthz, on the port its
# settings say.
FROM runtime AS producer
COPY --from=producer-venv /opt/ticklake/venv /opt/ticklake/venv
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('TICKLAKE_HTTP_PORT', '8001') + '/healthz', timeout=3)"]
EXPOSE 8001
ENTRYPOINT ["ticklake-producer"]
CMD ["serve"]

FROM runtime AS ingest
COPY --from=ingest-venv /opt/ticklake/venv /opt/ticklake/venv
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('TICKLAKE_HTTP_PORT', '8002') + '/healthz', timeout=3)"]
EXPOSE 8002
ENTRYPOINT ["ticklake-ingest"]

FROM runtime AS query-api
COPY --from=query-api-venv /opt/ticklake/venv /opt/ticklake/venv
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('TICKLAKE_HTTP_PORT', '8000') + '/healthz', timeout=3)"]
EXPOSE 8000
ENTRYPOINT ["ticklake-query"]
CMD ["serve"]

FROM runtime AS operator
COPY --from=operator-venv /opt/ticklake/venv /opt/ticklake/venv
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('TICKLAKE_OPERATOR_LIVENESS_PORT', '8080') + '/healthz', timeout=3)"]
EXPOSE 8080 9808
ENTRYPOINT ["ticklake-operator"]
CMD ["run"]
