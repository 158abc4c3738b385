"""The deployment files, checked without Docker or a cluster: Dockerfile, .dockerignore,
docker-compose.yml and k8s/. They must parse, name only real settings, and agree with each
other and with the code (app factories, ports, health endpoints, secrets)."""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import subprocess
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from winkit.platform.settings import SERVICE_PORTS, Settings

ROOT = Path(__file__).resolve().parents[1]
K8S = ROOT / "k8s"
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
DOCS = ROOT / "docs" / "deployment.md"

# The four services, the gateway and the app, with the ports the code itself uses.
PORTS: dict[str, int] = {
    **SERVICE_PORTS,
    "gateway": Settings.model_fields["gateway_port"].default,
    "app": Settings.model_fields["app_port"].default,
}
SERVICES = tuple(SERVICE_PORTS)
APPS = (*SERVICES, "gateway", "app")

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


def container_ports(workload: dict[str, Any]) -> list[dict[str, Any]]:
    return [port for c in pod_spec(workload)["containers"] for port in c.get("ports", [])]


def resolve_port(workload: dict[str, Any], port: int | str) -> int | None:
    """A container port given by number or by name, as its number (None: no such port)."""
    for declared in container_ports(workload):
        if port in (declared["containerPort"], declared.get("name")):
            return declared["containerPort"]
    return None


def app_container(name: str) -> dict[str, Any]:
    containers = pod_spec(named("Deployment", name))["containers"]
    assert len(containers) == 1
    return containers[0]


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
    assert "[redis,app]" in runs
    assert "[test" not in runs and "[dev" not in runs
    # The extra the image installs is one the project defines.
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert {"redis", "app"} <= set(extras)


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


def compose_service(name: str) -> dict[str, Any]:
    return compose()["services"][name]


def test_compose_uses_the_compose_spec_without_version() -> None:
    assert "version" not in compose()
    assert set(APPS) | {"mongo", "nats", "redis", "mailpit"} <= set(compose()["services"])


def test_compose_publishes_only_the_gateway_the_app_and_the_local_mail_ui() -> None:
    published = {name: svc["ports"] for name, svc in compose()["services"].items() if svc.get("ports")}
    assert published == {"gateway": ["8000:8000"], "app": ["8080:8080"], "mailpit": ["127.0.0.1:8025:8025"]}
    for name, service in compose()["services"].items():
        assert "network_mode" not in service, f"{name} must stay on the compose network"


@pytest.mark.parametrize("name", APPS)
def test_compose_app_runs_its_factory_on_its_port(name: str) -> None:
    service = compose_service(name)
    command = service["command"]
    assert command[0] == f"winkit.{name}.app:create_app"
    assert "--factory" in command
    assert option(command, "--host") == "0.0.0.0"
    assert int(option(command, "--port")) == PORTS[name]
    assert service["build"]["context"] == "."
    assert service["image"] == compose_service("gateway")["image"], "one image for all apps"
    assert service["read_only"] is True


@pytest.mark.parametrize("name", APPS)
def test_compose_healthcheck_asks_the_app_itself(name: str) -> None:
    test = " ".join(compose_service(name)["healthcheck"]["test"])
    path = "/" if name == "gateway" else "/health"
    assert f"http://127.0.0.1:{PORTS[name]}{path}'" in test
    assert test.startswith("CMD python -c"), "python: the slim image has no curl"


@pytest.mark.parametrize("name", SERVICES)
def test_compose_services_wait_for_a_healthy_database_and_bus(name: str) -> None:
    depends = compose_service(name)["depends_on"]
    assert depends["mongo"]["condition"] == "service_healthy"
    assert depends["nats"]["condition"] == "service_healthy"


def test_compose_gateway_waits_for_redis_and_the_services() -> None:
    depends = compose_service("gateway")["depends_on"]
    assert depends["redis"]["condition"] == "service_healthy"
    assert all(depends[name]["condition"] == "service_healthy" for name in SERVICES)


def test_compose_mongo_is_a_replica_set_initiated_by_its_healthcheck() -> None:
    mongo = compose_service("mongo")
    assert option(mongo["command"], "--replSet") == "rs0"
    check = " ".join(mongo["healthcheck"]["test"])
    assert "rs.initiate" in check and "rs.status" in check, "idempotent initiate"
    assert "'mongo:27017'" in check, "the member name the services can resolve"


def test_compose_nats_runs_jetstream_on_a_volume() -> None:
    nats = compose_service("nats")
    command = " ".join(nats["command"])
    assert "--jetstream" in command
    store = re.search(r"--store_dir[= ](\S+)", command)
    assert store is not None
    assert any(volume.endswith(":" + store.group(1)) for volume in nats["volumes"])
    assert "js-enabled-only" in " ".join(nats["healthcheck"]["test"])


@pytest.mark.parametrize("name", APPS)
def test_compose_secrets_only_where_needed(name: str) -> None:
    service = compose_service(name)
    secrets = set(service.get("secrets", []))
    assert secrets == COMPOSE_SECRETS[name]
    assert secrets <= set(compose()["secrets"])
    for key, value in service["environment"].items():
        if key.endswith("_FILE"):
            assert value.removeprefix("/run/secrets/") in secrets, f"{name}: {key} names no mounted secret"


@pytest.mark.parametrize("name", APPS)
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
    if name == "gateway":
        host = re.match(r"redis://([^:/]+):(\d+)", settings.gateway_rate_limit_storage)
        assert host is not None and host.group(1) in services


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
    assert int(option(args, "--port")) == PORTS[name]
    assert resolve_port(deployment, "http") == PORTS[name]
    assert container["image"] == "winkit", "kustomization.yaml's images: sets registry and tag"
    assert deployment["spec"]["replicas"] >= 2
    service = named("Service", name)
    assert [port["port"] for port in service["spec"]["ports"]] == [PORTS[name]]
    assert {"configMapRef": {"name": "winkit-config"}} in container["envFrom"]


@pytest.mark.parametrize("name", APPS)
def test_k8s_probes_use_health_for_readiness_and_root_for_liveness(name: str) -> None:
    deployment = named("Deployment", name)
    container = app_container(name)
    readiness = container["readinessProbe"]["httpGet"]
    liveness = container["livenessProbe"]["httpGet"]
    assert readiness["path"] == ("/" if name == "gateway" else "/health")
    assert liveness["path"] == "/"
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        if probe in container:
            http = container[probe]["httpGet"]
            assert http["path"] in ("/", "/health")
            assert resolve_port(deployment, http["port"]) == PORTS[name]


@pytest.mark.parametrize("name", APPS)
def test_k8s_app_is_locked_down_with_a_writable_tmp(name: str) -> None:
    spec = pod_spec(named("Deployment", name))
    container = app_container(name)
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["automountServiceAccountToken"] is False
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    resources = container["resources"]
    assert {"cpu", "memory"} <= set(resources["requests"]) and {"cpu", "memory"} <= set(resources["limits"])
    tmp = [m for m in container["volumeMounts"] if m["mountPath"] == "/tmp"]
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
    for container in spec["containers"]:
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
    env = dict(named("ConfigMap", "winkit-config")["data"])
    env |= {e["name"]: e["value"] for e in app_container(name).get("env", []) if "value" in e}
    settings = settings_from(env, monkeypatch)
    if name == "users":
        assert settings.jwt_private_key_file is not None
    if name in ("catalog", "orders", "delivery"):
        assert settings.service_secret_file is not None
    if name == "gateway":
        host = re.fullmatch(r"redis://([a-z-]+):(\d+)/\d+", settings.gateway_rate_limit_storage)
        assert host is not None, "several gateway replicas must share their rate limits"
        assert named("Service", host.group(1))["spec"]["ports"][0]["port"] == int(host.group(2))


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
    (inside("gateway"), "redis", 6379),
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
    (inside("users"), "redis", 6379),
    (SOMEWHERE_ELSE, "mongo", 27017),
    (SOMEWHERE_ELSE, "nats", 4222),
    (SOMEWHERE_ELSE, "redis", 6379),
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
        for container in obj.get("spec", {}).get("template", {}).get("spec", {}).get("containers", []):
            assert container["image"] != "winkit", "the images: entry rewrote the Winkit image"


def test_gateway_rate_limit_storage_works_with_the_installed_extra() -> None:
    """The redis URI the deployments configure builds a limiter with the `redis` extra."""
    pytest.importorskip("redis", reason="the `redis` extra is not installed in this environment")
    from winkit.gateway.ratelimit import RateLimits

    RateLimits(Settings(gateway_rate_limit_storage="redis://redis:6379/0"))
