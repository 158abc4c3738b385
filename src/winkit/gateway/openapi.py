"""One OpenAPI document for the whole public API: every service's, under its /api prefix."""

from __future__ import annotations

import asyncio
import copy
from typing import Any

from winkit.gateway.upstreams import Upstreams

Spec = dict[str, Any]

# Server-to-server routes and each service's own metrics: Envoy never routes them.
_PRIVATE_FIRST_SEGMENTS = frozenset({"internal", "metrics"})

_SCHEMA_REF = "#/components/schemas/"
# Each service's own service pages; the gateway publishes its own / and /health instead.
_NOT_PUBLISHED = frozenset({"/", "/health", "/metrics"})


class CombinedOpenApi:
    """Fetches each service's document at first need and keeps it; a service that could not
    be reached is asked again on the next request, and left out until then."""

    def __init__(self, upstreams: Upstreams) -> None:
        self._upstreams = upstreams
        self._specs: dict[str, Spec] = {}
        self._document: Spec | None = None

    async def document(self, gateway_spec: Spec) -> Spec:
        missing = [name for name in self._upstreams.urls if name not in self._specs]
        if missing:
            fetched = await asyncio.gather(*(self._upstreams.fetch_json(name, "/openapi.json") for name in missing))
            new = {name: spec for name, spec in zip(missing, fetched, strict=True) if isinstance(spec, dict)}
            if new:
                self._specs.update(new)
                self._document = None
        if self._document is None:
            present = {name: self._specs[name] for name in self._upstreams.urls if name in self._specs}
            self._document = combine(gateway_spec, present)
        return self._document


def combine(gateway_spec: Spec, specs: dict[str, Spec]) -> Spec:
    document = copy.deepcopy(gateway_spec)
    paths = document.setdefault("paths", {})
    components = document.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    security = components.setdefault("securitySchemes", {})
    tags = {tag["name"]: tag for tag in document.get("tags", [])}
    for service, spec in specs.items():
        spec = _with_prefixed_refs(spec, service)
        for path, item in spec.get("paths", {}).items():
            if path in _NOT_PUBLISHED or _is_private(path):
                continue
            for operation in item.values():
                if isinstance(operation, dict) and "operationId" in operation:
                    operation["operationId"] = f"{service}_{operation['operationId']}"
            paths[f"/api/{service}{path}"] = item
        parts = spec.get("components", {})
        # Prefixed, because two services may both define, say, "Order" differently.
        schemas.update({f"{service}.{name}": schema for name, schema in parts.get("schemas", {}).items()})
        security.update(parts.get("securitySchemes", {}))
        for tag in spec.get("tags", []):
            tags.setdefault(tag["name"], tag)
    # Every service's OAuth2 scheme names the user service's "login", relative to itself;
    # behind the gateway that is /api/users/login.
    for scheme in security.values():
        for flow in scheme.get("flows", {}).values():
            token_url = flow.get("tokenUrl", "")
            if token_url and not token_url.startswith(("/", "http://", "https://")):
                flow["tokenUrl"] = f"/api/users/{token_url}"
    if tags:
        document["tags"] = list(tags.values())
    return document


def _is_private(path: str) -> bool:
    first_segment = next((segment for segment in path.split("/") if segment), "")
    return first_segment in _PRIVATE_FIRST_SEGMENTS


def _with_prefixed_refs(node: Any, service: str) -> Any:
    """A copy of ``node`` where each schema reference (``$ref``, discriminator mappings)
    points at the service-prefixed name."""
    if isinstance(node, dict):
        return {key: _with_prefixed_refs(value, service) for key, value in node.items()}
    if isinstance(node, list):
        return [_with_prefixed_refs(value, service) for value in node]
    if isinstance(node, str) and node.startswith(_SCHEMA_REF):
        return f"{_SCHEMA_REF}{service}.{node.removeprefix(_SCHEMA_REF)}"
    return node
