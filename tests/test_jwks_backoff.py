"""Token keys while the user service is away: fetches back off, cached keys keep working.

The JWKS is served over real HTTP by a small app that counts fetches and can be switched
to fail; the tests assert on how many fetches happened, never on how long anything took.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import FastAPI
from harness import LiveServer, assert_problem, bound_socket
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from winkit.core.auth import NO_KEYS_BACKOFF_CAP, CurrentPrincipal, JwksSource, Role, TokenIssuer, TokenVerifier
from winkit.core.errors import ServiceUnavailable, Unauthorized, install_error_handlers
from winkit.core.settings import Settings

SETTINGS = Settings(env="dev")
ISSUER = TokenIssuer(Ed25519PrivateKey.generate(), SETTINGS)


class JwksServer:
    """A stand-in for the user service's JWKS endpoint that counts the fetches it gets."""

    def __init__(self) -> None:
        self.fetches = 0
        self.failing = False
        self.live = LiveServer(Starlette(routes=[Route("/jwks.json", self._jwks)]), bound_socket())
        self.url = f"{self.live.url}/jwks.json"

    async def _jwks(self, _: Request) -> JSONResponse:
        self.fetches += 1
        if self.failing:
            return JSONResponse({"detail": "down"}, status_code=503)
        return JSONResponse(ISSUER.jwks())


@pytest.fixture
def jwks() -> Iterator[JwksServer]:
    server = JwksServer()
    server.live.start()
    yield server
    server.live.stop()


def token() -> str:
    return ISSUER.issue("user-1", Role.CUSTOMER)[0]


def token_with_unknown_kid() -> str:
    claims = {"sub": "x", "iss": SETTINGS.jwt_issuer, "aud": SETTINGS.jwt_audience, "iat": 0, "exp": 2**31}
    return jwt.encode(claims, Ed25519PrivateKey.generate(), algorithm="EdDSA", headers={"kid": "rotated-away"})


@dataclass
class Clock:
    now: float = 1000.0

    def __call__(self) -> float:
        return self.now


async def fetches_reach(server: JwksServer, expected: int) -> int:
    """Fetch count once ``expected`` is reached (a background renewal runs on its own)."""
    for _ in range(500):
        if server.fetches >= expected:
            break
        await asyncio.sleep(0.01)
    return server.fetches


def test_requests_during_an_outage_share_one_fetch_and_get_503(jwks: JwksServer) -> None:
    """The user service fails before any key was fetched: ten requests, five at once, cost
    one fetch and each gets a 503 problem (before: one fetch per request, each queued
    behind the others' fetches)."""
    jwks.failing = True
    app = FastAPI()
    install_error_handlers(app)
    app.state.token_verifier = TokenVerifier(JwksSource(jwks.url, 300, min_refresh=60), SETTINGS)

    @app.get("/me")
    async def me(principal: CurrentPrincipal) -> dict[str, Any]:
        return {"user_id": principal.user_id}

    service = LiveServer(app, bound_socket())
    service.start()
    try:
        with httpx.Client(base_url=service.url, timeout=30) as client:

            def get(bearer: str) -> httpx.Response:
                return client.get("/me", headers={"Authorization": f"Bearer {bearer}"})

            with ThreadPoolExecutor(5) as pool:
                responses = list(pool.map(get, [token_with_unknown_kid()] * 5))
            responses += [get(token()) for _ in range(5)]
    finally:
        service.stop()
    assert jwks.fetches == 1  # before: 10, one per request
    for response in responses:
        assert_problem(response, 503)
        assert int(response.headers["retry-after"]) >= 1


async def test_cached_keys_verify_while_the_jwks_url_is_down(jwks: JwksServer) -> None:
    # cache_seconds=0: the cached keys are always past their cache time, the case where a
    # renewal is due while the user service is away.
    verifier = TokenVerifier(JwksSource(jwks.url, 0, min_refresh=60), SETTINGS)
    assert (await verifier.verify(token())).user_id == "user-1"
    assert jwks.fetches == 1

    jwks.failing = True
    for _ in range(5):
        assert (await verifier.verify(token())).user_id == "user-1"
        with pytest.raises(Unauthorized):
            await verifier.verify(token_with_unknown_kid())
    assert jwks.fetches == 1  # before: 11, a fetch for every verification

    jwks.live.stop()  # connections to the JWKS URL are now refused
    assert (await verifier.verify(token())).user_id == "user-1"


async def test_failed_fetches_back_off_exponentially_and_sooner_with_no_keys(jwks: JwksServer) -> None:
    clock = Clock()
    source = JwksSource(jwks.url, 40, min_refresh=10, clock=clock)
    jwks.failing = True
    expected = 0
    # Failures in a row wait 10, 20, 30, then 30 s before the next fetch: with no keys yet,
    # nothing verifies, so the wait stops at NO_KEYS_BACKOFF_CAP, below the cache time.
    for backoff in (10, 20, NO_KEYS_BACKOFF_CAP, NO_KEYS_BACKOFF_CAP):
        expected += 1
        with pytest.raises(ServiceUnavailable):
            await source.key("any")
        assert jwks.fetches == expected
        clock.now += backoff - 0.5
        with pytest.raises(ServiceUnavailable):
            await source.key("any")
        assert jwks.fetches == expected
        clock.now += 1

    jwks.failing = False
    kid = ISSUER.jwk["kid"]
    assert await source.key(kid) is not None
    assert jwks.fetches == expected + 1

    # After a success, an unknown kid waits min_refresh again, not the last back-off.
    clock.now += 10.5
    assert await source.key("forged") is None
    assert jwks.fetches == expected + 2

    # Past the cache time, a known key answers at once and is renewed in the background;
    # a failed renewal keeps the cached keys.
    jwks.failing = True
    clock.now += 41
    assert await source.key(kid) is not None
    assert await fetches_reach(jwks, expected + 3) == expected + 3
    assert await source.key(kid) is not None
    assert jwks.fetches == expected + 3
