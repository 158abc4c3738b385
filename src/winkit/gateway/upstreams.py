"""The services behind the gateway, as its pages look them up (health, API documents)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import structlog

from winkit.core.settings import ServiceName, Settings

log = structlog.get_logger("winkit.gateway")

# Look-ups give up quickly on a stuck service: /health must answer while one is down.
LOOKUP_TIMEOUT = 3.0


class Upstreams:
    client: httpx.AsyncClient  # open between connect() and its exit (the app's lifespan)

    def __init__(self, settings: Settings, services: Iterable[ServiceName]) -> None:
        self.urls: dict[str, str] = {name: settings.service_url(name).rstrip("/") for name in services}

    @asynccontextmanager
    async def connect(self) -> AsyncIterator[None]:
        # Service URLs, never via an environment proxy.
        async with httpx.AsyncClient(timeout=LOOKUP_TIMEOUT, trust_env=False) as self.client:
            yield

    async def fetch_json(self, service: str, path: str) -> Any | None:
        """``path`` from ``service`` as JSON, or None when it cannot be had right now."""
        try:
            response = await self.client.get(self.urls[service] + path)
            response.raise_for_status()
            return response.json()
        except (httpx.HTTPError, ValueError) as exc:
            log.warning("upstream_lookup_failed", service=service, path=path, error=repr(exc))
            return None

    async def health(self) -> dict[str, str]:
        """Every service's /health at once: "ok" or "down"."""
        answers = await asyncio.gather(*(self.fetch_json(name, "/health") for name in self.urls))
        return {name: "down" if answer is None else "ok" for name, answer in zip(self.urls, answers, strict=True)}
