"""The services behind the gateway, and the one pooled HTTP client that reaches them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from http.cookiejar import CookieJar, DefaultCookiePolicy
from typing import Any

import httpx
import structlog

from winkit.platform.settings import ServiceName, Settings

log = structlog.get_logger("winkit.gateway")

# Kept-alive connections, shared by all services: enough for a busy node without holding
# hundreds of idle sockets open on each service.
MAX_KEEPALIVE = 64
MAX_CONNECTIONS = 512
# Under uvicorn's 5 s keep-alive, so the gateway drops an idle connection before the
# service does and never sends on one that is being closed.
KEEPALIVE_EXPIRY = 4.0
# The gateway's own look-ups (health, API docs) give up quickly on a stuck service.
LOOKUP_TIMEOUT = 3.0


class Upstreams:
    client: httpx.AsyncClient  # open between connect() and its exit (the app's lifespan)

    def __init__(self, settings: Settings, services: Iterable[ServiceName]) -> None:
        self.urls = {name: settings.service_url(name).rstrip("/") for name in services}
        self._timeout = settings.gateway_upstream_timeout
        # Live streams: connecting is timed, the gaps between events are not.
        self.stream_timeout = httpx.Timeout(self._timeout, read=None)

    @asynccontextmanager
    async def connect(self) -> AsyncIterator[None]:
        # A shared client must neither keep users' cookies nor send them on with another's
        # request: its jar refuses them all.
        no_cookies = CookieJar(DefaultCookiePolicy(allowed_domains=[]))
        async with httpx.AsyncClient(
            timeout=self._timeout,
            limits=httpx.Limits(
                max_connections=MAX_CONNECTIONS,
                max_keepalive_connections=MAX_KEEPALIVE,
                keepalive_expiry=KEEPALIVE_EXPIRY,
            ),
            cookies=no_cookies,
            trust_env=False,  # loopback and service URLs, never via an environment proxy
        ) as self.client:
            yield

    async def fetch_json(self, service: str, path: str) -> Any | None:
        """``path`` from ``service`` as JSON, or None when it cannot be had right now."""
        try:
            response = await self.client.get(self.urls[service] + path, timeout=LOOKUP_TIMEOUT)
            response.raise_for_status()
            return response.json()
        except (httpx.HTTPError, ValueError) as exc:
            log.warning("upstream_lookup_failed", service=service, path=path, error=repr(exc))
            return None

    async def health(self) -> dict[str, str]:
        """Every service's /health at once: "ok" or "down"."""
        answers = await asyncio.gather(*(self.fetch_json(name, "/health") for name in self.urls))
        return {name: "down" if answer is None else "ok" for name, answer in zip(self.urls, answers, strict=True)}
