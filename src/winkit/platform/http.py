"""Calls from one service to another: pooled, time-bounded, with a service token."""

from __future__ import annotations

from typing import Any

import httpx
import structlog

from winkit.platform.auth import ServiceTokens
from winkit.platform.errors import ServiceUnavailable

log = structlog.get_logger("winkit.http")


class ServiceClient:
    def __init__(self, name: str, base_url: str, tokens: ServiceTokens, timeout: float = 5.0) -> None:
        self.name = name
        self._tokens = tokens
        self._client = httpx.AsyncClient(
            base_url=base_url,
            timeout=timeout,
            limits=httpx.Limits(max_keepalive_connections=20, max_connections=100),
        )

    async def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """Raise ServiceUnavailable when the other service cannot be reached in time."""
        headers = {"Authorization": f"Bearer {self._tokens.issue()}", **kwargs.pop("headers", {})}
        request_id = structlog.contextvars.get_contextvars().get("request_id")
        if request_id:
            headers["X-Request-ID"] = request_id
        try:
            return await self._client.request(method, path, headers=headers, **kwargs)
        except httpx.HTTPError as exc:
            log.warning("service_call_failed", service=self.name, path=path, error=repr(exc))
            raise ServiceUnavailable(f"The {self.name} service is unavailable; try again shortly.") from exc

    async def aclose(self) -> None:
        await self._client.aclose()
