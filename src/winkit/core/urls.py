"""Absolute URLs for links in answers (product images, say), and redirects that stay put.

Links are built from the configured public API URL, never from a request's ``Host`` (which
a client chooses), and every value in them is percent-encoded.
"""

from __future__ import annotations

from urllib.parse import quote, urlsplit

from fastapi import Request
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send


def public_url(request: Request, service: str, path: str) -> str:
    """``path`` of ``service`` as browsers reach it, e.g. .../api/catalog/products/x/image.svg."""
    return f"{request.app.state.settings.effective_public_api_url}/{service}{path}"


def segment(value: str) -> str:
    """A value as one path segment: spaces, '&' and '/' percent-encoded."""
    return quote(value, safe="")


class RelativeRedirects:
    """Makes every redirect's ``Location`` a path: an absolute one would name whatever host
    the client put in its ``Host`` header (``Host: evil.example`` would be sent back)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_relative(message: Message) -> None:
            if message["type"] == "http.response.start" and 300 <= message["status"] < 400:
                headers = MutableHeaders(scope=message)
                if location := headers.get("location"):
                    parts = urlsplit(location)
                    headers["location"] = parts.path + (f"?{parts.query}" if parts.query else "")
            await send(message)

        await self.app(scope, receive, send_relative)
