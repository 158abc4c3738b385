# syntax=docker/dockerfile:1
#
# One image for every Winkit service, the gateway's Python app and the app. It holds the installed
# package only; compose and Kubernetes choose the app factory and port, e.g.
#   docker run winkit:local winkit.users.app:create_app --factory --host 0.0.0.0 --port 8001
# Without arguments it runs the gateway's pages app on 127.0.0.1:8005, for an Envoy sharing its
# network namespace. Envoy itself is the official envoyproxy/envoy image, whose configuration
# this image writes: docker run --entrypoint winkit winkit:local gateway envoy-config
# Build: docker build -t winkit:local .   (docs/deployment.md has the rest)

ARG PYTHON_IMAGE=python:3.11-slim

# --- build: a wheel of the project, installed with the app extra into /opt/venv -----------
FROM ${PYTHON_IMAGE} AS build

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1

WORKDIR /src
# Only what the wheel is built from (.dockerignore keeps everything else out of the context).
COPY pyproject.toml README.md ./
COPY src ./src

# The runtime dependencies plus the `app` extra (the Flet web app and its Flutter build);
# never `test`, nor `embedded` (containers use real MongoDB, NATS and the Envoy image).
RUN python -m pip wheel --no-deps --wheel-dir /wheels . \
 && python -m venv /opt/venv \
 && set -- /wheels/winkit-*.whl \
 && /opt/venv/bin/pip install "$1[app]" \
 && /opt/venv/bin/pip uninstall --yes pip setuptools

# --- runtime: the venv on a clean base, as an unprivileged user ---------------------------
FROM ${PYTHON_IMAGE} AS runtime

LABEL org.opencontainers.image.title="winkit" \
      org.opencontainers.image.description="Winkit quick-commerce services (users, catalog, orders, delivery, gateway, app)" \
      org.opencontainers.image.licenses="Apache-2.0"

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
