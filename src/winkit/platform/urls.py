"""Absolute URLs for links in responses, correct behind the gateway too."""

from fastapi import Request


def public_url(request: Request, path: str) -> str:
    # The gateway says under which prefix it serves this service (e.g. /api/catalog).
    prefix = request.headers.get("x-forwarded-prefix", "").rstrip("/")
    return f"{str(request.base_url).rstrip('/')}{prefix}{path}"
