"""docker-compose.yml, the Dockerfile and .dockerignore, checked without a Docker engine."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from deployment import (
    ADMIN_PORT,
    APPS,
    COMPOSE_SECRETS,
    DOCKERFILE,
    DOCKERIGNORE,
    ENVOY_CONFIG,
    ENVOY_IMAGE,
    ENVOY_UID,
    METRICS_PORT,
    PAGES_PORT,
    PINNED_IMAGE,
    PORTS,
    ROOT,
    SERVICES,
    cluster_address,
    compose,
    listener,
    option,
    settings_from,
    validate_with_local_envoy,
)

from winkit.gateway import envoy

# --- Dockerfile -----------------------------------------------------------------------------


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs: comment lines dropped, continuation lines joined."""
    lines = [line for line in DOCKERFILE.read_text().splitlines() if not line.lstrip().startswith("#")]
    text = re.sub(r"\\\n", " ", "\n".join(lines))
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line.strip() else "")
        for line in (raw.strip() for raw in text.splitlines())
        if line
    ]


def test_dockerfile_builds_a_wheel_in_one_stage_and_runs_it_in_another() -> None:
    instructions = dockerfile_instructions()
    args = dict(value.split("=", 1) for kind, value in instructions if kind == "ARG" and "=" in value)
    stages = [
        value.replace("${PYTHON_IMAGE}", args.get("PYTHON_IMAGE", "")) for kind, value in instructions if kind == "FROM"
    ]
    assert len(stages) >= 2
    # Python 3.11's slim image, by tag and digest.
    assert all(re.fullmatch(r"python:3\.11(\.\d+)?-slim@sha256:[0-9a-f]{64} AS \w+", stage) for stage in stages)
    runs = " ".join(value for kind, value in instructions if kind == "RUN")
    assert "pip wheel --no-deps --no-build-isolation" in runs
    # Every package from a lock file, checked against its hashes; the project's wheel last,
    # adding nothing the lock did not name.
    assert "--require-hashes -r requirements/build.txt" in runs
    assert "--require-hashes -r requirements/image.txt" in runs
    assert "install --no-deps /wheels/winkit-" in runs
    assert "redis" not in runs


def test_dockerfile_carries_oci_labels() -> None:
    labels = " ".join(value for kind, value in dockerfile_instructions() if kind == "LABEL")
    for key in ("title", "description", "licenses", "version", "revision", "created", "base.name"):
        assert f"org.opencontainers.image.{key}=" in labels, key


def test_dockerfile_runs_uvicorn_as_an_unprivileged_user() -> None:
    instructions = dockerfile_instructions()
    users = [value for kind, value in instructions if kind == "USER"]
    assert users, "no USER: the container would run as root"
    uid = users[-1].split(":")[0]
    assert uid.isdigit(), "a numeric uid, so runAsNonRoot can check it"
    assert int(uid) != 0, "a non-root uid"
    entrypoint = [value for kind, value in instructions if kind == "ENTRYPOINT"][-1]
    assert json.loads(entrypoint) == ["uvicorn"]
    assert any(kind == "ENV" and "WINKIT_ENV=prod" in value for kind, value in instructions)


def test_dockerignore_keeps_secrets_and_local_state_out_of_the_build_context() -> None:
    patterns = [
        line.strip()
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip() and not line.strip().startswith("#")
    ]
    assert patterns[0] == "*", "an allowlist: everything is excluded unless re-included"
    included = {p[1:].rstrip("/") for p in patterns if p.startswith("!")}
    assert included == {"pyproject.toml", "README.md", "requirements", "src"}
    # What the Dockerfile copies in must be in the context.
    copied = {
        PurePosixPath(part).parts[0]
        for kind, value in dockerfile_instructions()
        if kind == "COPY" and "--from" not in value
        for part in value.split()[:-1]
    }
    assert copied <= included
    readme = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["readme"]
    assert readme in included


# --- docker-compose.yml ------------------------------------------------------------------------

# Besides the apps: the databases, the mail catcher, the traces' collector and Jaeger, and
# the gateway's Envoy with the two one-shots that write and then check its configuration.
COMPOSE_INFRASTRUCTURE = {"mongo", "nats", "mailpit", "otel-collector", "jaeger"}
COMPOSE_ENVOY = {"gateway-config", "gateway-config-check", "envoy"}


def compose_service(name: str) -> dict[str, Any]:
    return compose()["services"][name]


def compose_mounts(service: dict[str, Any]) -> dict[str, tuple[str, bool]]:
    """A service's volumes as {target: (source, read-only)}, short or long syntax."""
    mounts = {}
    for volume in service.get("volumes", []):
        if isinstance(volume, str):
            source, target, *mode = volume.split(":")
            mounts[target] = (source, mode == ["ro"])
        else:
            mounts[volume["target"]] = (volume["source"], volume.get("read_only", False))
    return mounts


def test_compose_uses_the_compose_spec_without_version() -> None:
    assert "version" not in compose()
    assert set(compose()["services"]) == set(APPS) | COMPOSE_INFRASTRUCTURE | COMPOSE_ENVOY


def test_compose_publishes_only_envoy_the_app_and_the_local_mail_and_trace_uis() -> None:
    published = {name: svc["ports"] for name, svc in compose()["services"].items() if svc.get("ports")}
    assert published == {
        "envoy": [f"{PORTS['gateway']}:{PORTS['gateway']}"],
        "app": ["8080:8080"],
        "mailpit": ["127.0.0.1:8025:8025"],
        "jaeger": ["127.0.0.1:16686:16686"],
    }
    # Everything is on the compose network but the gateway's app, which lives in Envoy's
    # network namespace, and the one-shots, which need no network at all.
    modes = {name: svc["network_mode"] for name, svc in compose()["services"].items() if "network_mode" in svc}
    assert modes == {"gateway": "service:envoy", "gateway-config": "none", "gateway-config-check": "none"}
    for name, service in compose()["services"].items():
        assert ("networks" in service) == (name not in modes), name


@pytest.mark.parametrize("name", APPS)
def test_compose_app_runs_its_factory_on_its_port(name: str) -> None:
    service = compose_service(name)
    command = service["command"]
    assert command[0] == f"winkit.{name}.app:create_app"
    assert "--factory" in command
    if name == "gateway":
        # Envoy's pages cluster: 127.0.0.1 of the network namespace they share.
        assert option(command, "--host") == "127.0.0.1"
        assert int(option(command, "--port")) == PAGES_PORT
    else:
        assert option(command, "--host") == "0.0.0.0"
        assert int(option(command, "--port")) == PORTS[name]
    assert service["build"]["context"] == "."
    assert service["image"] == compose_service("gateway")["image"], "one image for all apps"
    assert service["read_only"] is True


@pytest.mark.parametrize("name", APPS)
def test_compose_healthcheck_asks_the_app_itself(name: str) -> None:
    test = " ".join(compose_service(name)["healthcheck"]["test"])
    address = f"http://127.0.0.1:{PAGES_PORT}/'" if name == "gateway" else f"http://127.0.0.1:{PORTS[name]}/health'"
    assert address in test
    assert test.startswith("CMD python -c"), "python: the slim image has no curl"


@pytest.mark.parametrize("name", SERVICES)
def test_compose_services_wait_for_a_healthy_database_and_bus(name: str) -> None:
    depends = compose_service(name)["depends_on"]
    assert depends["mongo"]["condition"] == "service_healthy"
    assert depends["nats"]["condition"] == "service_healthy"


def test_compose_envoy_config_is_written_then_checked_then_run() -> None:
    """gateway-config writes the file with the Winkit image; gateway-config-check validates
    it with the Envoy image; envoy starts only after both succeeded and the services are
    healthy (it fetches the JWKS from users as it starts)."""
    writer = compose_service("gateway-config")
    assert writer["image"] == compose_service("gateway")["image"]
    assert writer["entrypoint"] == ["winkit"]
    assert writer["command"][:2] == ["gateway", "envoy-config"]
    assert option(writer["command"], "--output") == str(ENVOY_CONFIG)
    assert writer["restart"] == "no"
    assert compose_mounts(writer)[str(ENVOY_CONFIG.parent)] == ("envoy-config", False)

    check = compose_service("gateway-config-check")
    assert check["image"] == compose_service("envoy")["image"]
    assert check["entrypoint"] == ["envoy"]
    assert option(check["command"], "--mode") == "validate"
    assert option(check["command"], "-c") == str(ENVOY_CONFIG)
    assert check["restart"] == "no"
    assert check["depends_on"] == {"gateway-config": {"condition": "service_completed_successfully"}}

    proxy = compose_service("envoy")
    assert proxy["entrypoint"] == ["envoy"]
    assert option(proxy["command"], "-c") == str(ENVOY_CONFIG)
    assert "--mode" not in proxy["command"]
    assert proxy["restart"] == "unless-stopped"
    depends = proxy["depends_on"]
    assert depends["gateway-config-check"]["condition"] == "service_completed_successfully"
    assert all(depends[name]["condition"] == "service_healthy" for name in SERVICES)
    for service in (check, proxy):
        # Read-only, and never seeded from the envoy image's own /etc/envoy.
        assert compose_mounts(service)[str(ENVOY_CONFIG.parent)] == ("envoy-config", True)
        (long_form,) = service["volumes"]
        assert long_form["volume"]["nocopy"] is True
    assert "envoy-config" in compose()["volumes"]


def test_compose_envoy_runs_unprivileged_with_nothing_writable() -> None:
    for name in ("gateway-config-check", "envoy"):
        service = compose_service(name)
        assert ENVOY_IMAGE.fullmatch(service["image"]), name
        assert service["user"] == f"{ENVOY_UID}:{ENVOY_UID}", "the image's envoy user, not root"
        assert service["read_only"] is True
        assert service["cap_drop"] == ["ALL"]
        assert "no-new-privileges:true" in service["security_opt"]
        assert "secrets" not in service
    assert "secrets" not in compose_service("gateway-config")


def test_compose_gateway_app_lives_in_envoys_network_namespace_after_the_services() -> None:
    gateway = compose_service("gateway")
    assert gateway["network_mode"] == "service:envoy"
    assert "envoy" in gateway["depends_on"]
    # The app waits for both halves of the gateway, and calls the API through Envoy.
    app = compose_service("app")
    assert app["depends_on"]["envoy"]["condition"] == "service_healthy"
    assert app["depends_on"]["gateway"]["condition"] == "service_healthy"
    api = urlsplit(app["environment"]["WINKIT_APP_API_URL"])
    assert (api.hostname, api.port, api.path) == ("envoy", PORTS["gateway"], "/api")


def test_compose_envoy_healthcheck_asks_envoys_admin_for_readiness() -> None:
    test = " ".join(compose_service("envoy")["healthcheck"]["test"])
    assert test.startswith("CMD bash -c"), "the envoy image has bash but no curl or wget"
    assert f"/dev/tcp/127.0.0.1/{ADMIN_PORT}" in test
    assert "GET /ready HTTP/1.1" in test


def test_compose_envoy_config_for_its_settings_is_valid_and_matches_the_services(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The configuration gateway-config writes: Envoy's edge on the published port on every
    address, admin on loopback, the pages at the gateway app's address, each service at its
    compose service; and Envoy accepts it."""
    settings = settings_from(compose_service("gateway-config")["environment"], monkeypatch)
    config = envoy.config(settings)
    edge = listener(config, "edge")
    assert (edge["address"], edge["port_value"]) == ("0.0.0.0", PORTS["gateway"])
    assert listener(config, "metrics")["port_value"] == METRICS_PORT
    admin = config["admin"]["address"]["socket_address"]
    assert (admin["address"], admin["port_value"]) == ("127.0.0.1", ADMIN_PORT)
    gateway = compose_service("gateway")["command"]
    assert cluster_address(config, envoy.PAGES_CLUSTER) == (option(gateway, "--host"), int(option(gateway, "--port")))
    for service in SERVICES:
        host, port = cluster_address(config, service)
        assert host in compose()["services"]
        assert port == int(option(compose_service(host)["command"], "--port"))
    # Envoy traces too: the root span of every request, sent to the compose collector.
    collector = urlsplit(OTLP_HTTP)
    assert cluster_address(config, envoy.TRACES_CLUSTER) == (collector.hostname, collector.port)
    validate_with_local_envoy(config, tmp_path)


@pytest.mark.parametrize("name", APPS)
def test_compose_secrets_only_where_needed(name: str) -> None:
    service = compose_service(name)
    secrets = set(service.get("secrets", []))
    assert secrets == COMPOSE_SECRETS[name]
    assert secrets <= set(compose()["secrets"])
    for key, value in service["environment"].items():
        if key.endswith("_FILE"):
            assert value.removeprefix("/run/secrets/") in secrets, f"{name}: {key} names no mounted secret"


@pytest.mark.parametrize("name", [*APPS, "gateway-config"])
def test_compose_environment_is_valid_settings(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = settings_from(compose_service(name)["environment"], monkeypatch)
    assert settings.env == "prod"
    assert settings.nats_url is not None
    services = compose()["services"]
    for service in SERVICES:
        assert "replicaSet=rs0" in settings.mongodb_uri_for(service)
        url = settings.service_url(service)
        assert url == f"http://{service}:{PORTS[service]}"
        assert service in services
    if name == "users":
        assert settings.smtp_host == "mailpit"
        assert settings.jwt_private_key_file is not None


def test_compose_builds_its_own_image_and_never_pulls_one_by_that_name() -> None:
    built = {name: svc for name, svc in compose()["services"].items() if "build" in svc}
    assert set(built) == {*APPS, "gateway-config"}
    for name, service in built.items():
        assert service["pull_policy"] == "build", name


def test_third_party_images_are_pinned_by_digest() -> None:
    """A tag can be moved to other bytes; a digest cannot. Renovate updates both."""
    for name, service in compose()["services"].items():
        if "build" in service:
            continue
        assert PINNED_IMAGE.fullmatch(service["image"]), f"{name}: {service['image']} is not image:tag@sha256:..."


def test_every_compose_service_has_cpu_and_memory_limits() -> None:
    for name, service in compose()["services"].items():
        limits = service["deploy"]["resources"]["limits"]
        assert float(limits["cpus"]) > 0, name
        assert re.fullmatch(r"\d+[MG]", limits["memory"]), name


OTLP_HTTP = "http://otel-collector:4318"


@pytest.mark.parametrize("name", [*APPS, "gateway-config"])
def test_compose_sends_every_process_traces_to_the_collector(name: str) -> None:
    """gateway-config passes it on to Envoy, whose configuration then traces too."""
    assert compose_service(name)["environment"]["OTEL_EXPORTER_OTLP_ENDPOINT"] == OTLP_HTTP


def test_the_collector_receives_otlp_and_hands_traces_to_jaeger() -> None:
    (config_ref,) = compose_service("otel-collector")["configs"]
    config = yaml.safe_load((ROOT / compose()["configs"][config_ref["source"]]["file"]).read_text())
    assert compose_service("otel-collector")["command"] == [f"--config={config_ref['target']}"]
    http = config["receivers"]["otlp"]["protocols"]["http"]["endpoint"]
    assert urlsplit(f"//{http}").port == urlsplit(OTLP_HTTP).port
    pipeline = config["service"]["pipelines"]["traces"]
    assert pipeline["receivers"] == ["otlp"]
    (exporter,) = pipeline["exporters"]
    host, port = config["exporters"][exporter]["endpoint"].split(":")
    assert host == "jaeger"
    assert int(port) == 4317, "Jaeger v2 takes OTLP over gRPC on 4317"
    assert {"otel-collector", "jaeger"} <= set(compose()["services"])
