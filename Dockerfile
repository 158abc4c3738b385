# syntax=docker/dockerfile:1
#
# One image for every Winkit service, the gateway's Python app and the app. It holds the installed
# package only; compose and Kubernetes choose the app factory and port, e.g.
#   docker run winkit:local winkit.users.app:create_app --factory --host 0.0.0.0 --port 8001
# Without arguments it runs the gateway's pages app on 127.0.0.1:8005, for an Envoy sharing its
# network namespace. Envoy itself is the official envoyproxy/envoy image, whose configuration
# this image writes: docker run --entrypoint winkit winkit:local gateway envoy-config
# Build: docker build -t winkit:local .   (docs/deployment.md has the rest)

# Pinned by tag and digest (Renovate updates both).
ARG PYTHON_IMAGE=python:3.11.15-slim@sha256:90744cff8f32887f075c47d747a173ff333e9e98801667af93c357fa9f5e28ff

# --- build: a wheel of the project, installed with the app extra into /opt/venv -----------
FROM ${PYTHON_IMAGE} AS build

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1

WORKDIR /src
# Only what the wheel is built from (.dockerignore keeps everything else out of the context).
COPY requirements/build.txt requirements/image.txt ./requirements/
COPY pyproject.toml README.md ./
COPY src ./src

# Every package at the version and hash the lock files name: the build backend for the
# wheel, then the runtime dependencies plus the `app` extra (the Flet web app and its
# Flutter build) into the venv; never `test`, nor `embedded` (containers use real MongoDB,
# NATS and the Envoy image). The project's own wheel goes in last, without dependencies.
RUN python -m pip install --require-hashes -r requirements/build.txt \
 && python -m pip wheel --no-deps --no-build-isolation --wheel-dir /wheels . \
 && python -m venv /opt/venv \
 && /opt/venv/bin/pip install --require-hashes -r requirements/image.txt \
 && /opt/venv/bin/pip install --no-deps /wheels/winkit-*.whl \
 && /opt/venv/bin/pip uninstall --yes pip setuptools

# --- runtime: the venv on a clean base, as an unprivileged user ---------------------------
FROM ${PYTHON_IMAGE} AS runtime

# OCI annotations. The build passes what only it knows, e.g. --build-arg VERSION=0.1.0
# --build-arg REVISION=$(git rev-parse HEAD) --build-arg CREATED=$(date -u +%FT%TZ), and
# --label org.opencontainers.image.source=<your repository's URL>.
ARG PYTHON_IMAGE
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG CREATED=unknown
LABEL org.opencontainers.image.title="winkit" \
      org.opencontainers.image.description="Winkit quick-commerce services (users, catalog, orders, delivery, gateway, app)" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.base.name="${PYTHON_IMAGE}"

# A fixed numeric uid/gid, so Kubernetes' runAsNonRoot can verify it without a passwd lookup.
# /etc/envoy is where `winkit gateway envoy-config` writes Envoy's configuration in Compose:
# a new named volume mounted there takes this directory's owner, so the user may write it.
RUN groupadd --system --gid 10001 winkit \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
            --shell /usr/sbin/nologin winkit \
 && install -d -o 10001 -g 10001 -m 0755 /etc/envoy

COPY --from=build /opt/venv /opt/venv

# Containers are production: keys, SMTP and databases must be configured, never generated.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    WINKIT_ENV=prod

WORKDIR /tmp
USER 10001:10001

EXPOSE 8001 8002 8003 8004 8080

# No HEALTHCHECK here: the port differs per service, so compose and Kubernetes define theirs.
ENTRYPOINT ["uvicorn"]
CMD ["winkit.gateway.app:create_app", "--factory", "--host", "127.0.0.1", "--port", "8005", "--no-access-log"]
