"""Calls from one service to another: pooled, time-bounded, with a service token."""

from __future__ import annotations

from typing import Any

import httpx
import structlog

from winkit.core.auth import ServiceTokens
from winkit.core.errors import ServiceUnavailable

log = structlog.get_logger("winkit.http")


class ServiceClient:
    """Calls carry a service token, or the end user's own token when made on their behalf."""

    def __init__(self, name: str, base_url: str, tokens: ServiceTokens | None, timeout: float = 5.0) -> None:
        self.name = name
        self._tokens = tokens
        self._client = httpx.AsyncClient(
            base_url=base_url,
            timeout=timeout,
            limits=httpx.Limits(max_keepalive_connections=20, max_connections=100),
        )

    async def request(self, method: str, path: str, *, bearer: str | None = None, **kwargs: Any) -> httpx.Response:
        """Raise ServiceUnavailable when the other service cannot be reached in time."""
        if bearer is None:
            assert self._tokens is not None, f"calls to {self.name} need a user's token"
            bearer = self._tokens.issue()
        headers = {"Authorization": f"Bearer {bearer}", **kwargs.pop("headers", {})}
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
