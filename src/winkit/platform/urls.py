"""Absolute URLs for links in responses (product images, say)."""

from urllib.parse import quote

from fastapi import Request


def public_url(request: Request, service: str, path: str) -> str:
    """``path`` of ``service`` as clients reach it: under the configured public API URL
    (behind an Ingress, say), else as this request came in (directly or through the gateway)."""
    configured = request.app.state.settings.public_api_url
    if configured:
        return f"{configured.rstrip('/')}/{service}{path}"
    # The gateway says under which prefix it serves this service (e.g. /api/catalog).
    prefix = request.headers.get("x-forwarded-prefix", "").rstrip("/")
    return f"{str(request.base_url).rstrip('/')}{prefix}{path}"


def segment(value: str) -> str:
    """A value as one path segment: spaces, '&' and '/' percent-encoded."""
    return quote(value, safe="")
