"""Request limits per client IP, user and email, counted in memory or in Redis (``limits``)."""

from __future__ import annotations

import math
import time

import structlog
from limits import RateLimitItem, parse_many
from limits.aio.storage import Storage
from limits.aio.strategies import SlidingWindowCounterRateLimiter
from limits.errors import StorageError
from limits.storage import storage_from_string

from winkit.platform.errors import TooManyRequests
from winkit.platform.settings import Settings

log = structlog.get_logger("winkit.gateway")


def rate_limit_storage(uri: str) -> Storage:
    """``memory://`` or ``redis://...`` (settings) as the async storage ``limits`` wants.

    Redis is spoken through redis-py, which the ``redis`` extra installs (limits' default
    client is coredis), with short timeouts: a stuck Redis must not stall every request.
    Storage errors are wrapped so that they can be told apart.
    """
    async_uri = uri if uri.startswith("async+") else f"async+{uri}"
    options: dict[str, str | float] = {}
    if async_uri.startswith("async+redis"):
        options = {"implementation": "redispy", "socket_connect_timeout": 0.5, "socket_timeout": 0.5}
    storage = storage_from_string(async_uri, wrap_exceptions=True, **options)
    assert isinstance(storage, Storage)
    return storage


class RateLimits:
    """Sliding window counters: O(1) per hit in memory and in Redis, unlike a moving window
    (which keeps every hit), and without the double burst a fixed window allows at its edge."""

    def __init__(self, settings: Settings) -> None:
        self._limiter = SlidingWindowCounterRateLimiter(rate_limit_storage(settings.gateway_rate_limit_storage))
        self._default = parse_many(settings.gateway_default_rate_limit)
        self._sign_in = parse_many(settings.gateway_auth_rate_limit)

    async def hit_default(self, kind: str, key: str) -> None:
        """Every proxied request, once per client IP and once per signed-in user."""
        await self._hit(self._default, kind, key)

    async def hit_sign_in(self, kind: str, key: str) -> None:
        """Login, registration and one-time codes, per client IP and per email."""
        await self._hit(self._sign_in, f"sign-in-{kind}", key)

    async def _hit(self, items: list[RateLimitItem], kind: str, key: str) -> None:
        for item in items:
            try:
                if await self._limiter.hit(item, kind, key):
                    continue
                stats = await self._limiter.get_window_stats(item, kind, key)
            except StorageError as exc:
                # Fail open: Redis being away must not take the whole API down with it, and
                # the user service keeps its own code cooldowns and attempt limits.
                log.warning("rate_limit_storage_unavailable", error=str(exc))
                return
            raise TooManyRequests(
                f"Too many requests; the limit is {item}.",
                retry_after=math.ceil(stats.reset_time - time.time()),
            )
