"""The code stays linted and formatted (ruff, configured in pyproject.toml), and every
service keeps the shape docs/architecture.md describes."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parent.parent
RUFF = [sys.executable, "-m", "ruff"]


def test_ruff_finds_nothing():
    result = subprocess.run(
        [*RUFF, "check", "src", "tests", "bench", "scripts"], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout


def test_code_is_formatted():
    result = subprocess.run(
        [*RUFF, "format", "--check", "src", "tests", "bench", "scripts"], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout


# --- the shape every service keeps (docs/architecture.md) ----------------------------

SERVICES = ("users", "catalog", "orders", "delivery")
# Only these may touch the database driver: stores, and the models their documents become.
DRIVER_SIDE = {"store.py", "models.py"}
# The HTTP edge may speak in plain JSON objects (OpenAPI extras, the JWKS).
HTTP_SIDE = {"api.py", "schemas.py", "app.py"}
UNTYPED = ("dict[str, Any]", "Document")


def service_modules() -> list[tuple[str, Path, ast.Module]]:
    return [
        (service, path, ast.parse(path.read_text()))
        for service in SERVICES
        for path in sorted((ROOT / "src" / "winkit" / service).glob("*.py"))
    ]


def imported(tree: ast.Module) -> set[str]:
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_only_stores_and_models_touch_the_database_driver():
    offenders = [
        f"{path.relative_to(ROOT)} imports {name}"
        for _, path, tree in service_modules()
        if path.name not in DRIVER_SIDE
        for name in imported(tree)
        if name.split(".")[0] in {"pymongo", "bson", "motor"}
    ]
    assert offenders == []


def test_services_never_import_each_other():
    offenders = [
        f"{path.relative_to(ROOT)} imports {name}"
        for service, path, tree in service_modules()
        for name in imported(tree)
        if name.split(".")[:2] != ["winkit", service] and name.split(".")[1:2] in ([s] for s in SERVICES)
    ]
    assert offenders == []


def test_domain_functions_take_and_return_typed_models():
    """No domain function takes or returns a raw document or an untyped dict."""
    offenders = []
    for _, path, tree in service_modules():
        if path.name in DRIVER_SIDE | HTTP_SIDE:
            continue
        for node in ast.walk(tree):
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            arguments = node.args.posonlyargs + node.args.args + node.args.kwonlyargs
            annotations = [a.annotation for a in arguments] + [node.returns]
            for annotation in filter(None, annotations):
                text = ast.unparse(annotation)
                if any(untyped in text for untyped in UNTYPED):
                    offenders.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name}: {text}")
    assert offenders == []
