"""Access tokens: issued by the user service, verified by every service from public keys."""

from __future__ import annotations

import asyncio
import math
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Annotated, Any

import httpx
import jwt
import structlog
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import Depends, Request
from fastapi.security import OAuth2PasswordBearer
from starlette.types import Scope

from winkit.core.errors import Forbidden, ServiceUnavailable, Unauthorized
from winkit.core.keys import public_jwk
from winkit.core.settings import Settings

log = structlog.get_logger("winkit.auth")

SERVICE_AUDIENCE = "winkit-internal"
# Seconds between JWKS fetch attempts, at most, while no key has ever been fetched.
NO_KEYS_BACKOFF_CAP = 30.0


class Role(StrEnum):
    CUSTOMER = "customer"
    STAFF = "staff"
    ADMIN = "admin"


STAFF_ROLES = frozenset({Role.STAFF, Role.ADMIN})


@dataclass(frozen=True, slots=True)
class Principal:
    user_id: str
    role: Role
    # The bearer token itself, for calls a service makes on the user's behalf.
    token: str = field(default="", repr=False, compare=False)

    @property
    def is_staff(self) -> bool:
        return self.role in STAFF_ROLES


class TokenIssuer:
    """Signs EdDSA access tokens; lives only in the user service."""

    def __init__(self, key: Ed25519PrivateKey, settings: Settings) -> None:
        self._key = key
        self._settings = settings
        self.jwk = public_jwk(key.public_key())

    def issue(self, user_id: str, role: Role) -> tuple[str, int]:
        now = int(time.time())
        ttl = self._settings.access_token_ttl
        claims = {
            "sub": user_id,
            "role": role.value,
            "iss": self._settings.jwt_issuer,
            "aud": self._settings.jwt_audience,
            "iat": now,
            "exp": now + ttl,
            "jti": uuid.uuid4().hex,
        }
        token = jwt.encode(claims, self._key, algorithm="EdDSA", headers={"kid": self.jwk["kid"]})
        return token, ttl

    def jwks(self) -> dict[str, list[dict[str, str]]]:
        return {"keys": [self.jwk]}


class JwksSource:
    """Public keys fetched from the user service's JWKS and cached.

    An unknown ``kid`` triggers a fetch (key rotation); keys older than ``cache_seconds``
    keep verifying while a background fetch renews them. After any attempt, success or
    failure, no other starts for ``min_refresh`` seconds, doubled for each failure in a row
    up to the cache time: forged kids cannot turn every request into a fetch, and while the
    user service is away requests answer at once instead of queueing behind fetches that
    each wait for their own timeout.
    """

    def __init__(
        self,
        url: str,
        cache_seconds: int,
        *,
        min_refresh: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._url = url
        self._cache_seconds = cache_seconds
        self._min_refresh = min_refresh
        self._clock = clock
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at = -math.inf  # last success
        self._next_attempt = -math.inf  # no fetch starts before this
        self._failures = 0  # in a row
        self._lock = asyncio.Lock()
        self._renewal: asyncio.Task[None] | None = None

    @classmethod
    def static(cls, jwks: dict[str, Any]) -> JwksSource:
        source = cls(url="", cache_seconds=0)
        source._keys = {k["kid"]: jwt.PyJWK(k) for k in jwks["keys"]}
        source._fetched_at = source._next_attempt = math.inf
        return source

    def _backoff_left(self) -> float:
        """Seconds until a fetch may start (0: one may start now)."""
        return max(0.0, self._next_attempt - self._clock())

    async def key(self, kid: str) -> jwt.PyJWK | None:
        key = self._keys.get(kid)
        if key is not None:
            stale = self._clock() - self._fetched_at > self._cache_seconds
            if stale and not self._backoff_left() and (self._renewal is None or self._renewal.done()):
                self._renewal = asyncio.create_task(self._refresh())
            return key
        # Checked before the lock: during back-off nobody waits for a fetch that will not start.
        if not self._backoff_left():
            await self._refresh()
        if not self._keys:
            retry_after = str(max(1, math.ceil(self._backoff_left())))
            raise ServiceUnavailable(
                "Token keys are unavailable; try again shortly.", headers={"Retry-After": retry_after}
            )
        return self._keys.get(kid)

    async def _refresh(self) -> None:
        async with self._lock:
            # Whoever held the lock before may have just fetched, or failed to.
            if self._backoff_left():
                return
            try:
                async with httpx.AsyncClient(timeout=3.0) as client:
                    response = await client.get(self._url)
                    response.raise_for_status()
                    keys = {k["kid"]: jwt.PyJWK(k) for k in response.json()["keys"] if "kid" in k}
            except (httpx.HTTPError, jwt.PyJWTError, AttributeError, KeyError, TypeError, ValueError) as exc:
                # The exponent is bounded so a days-long outage cannot overflow the float.
                self._failures += 1
                backoff = self._min_refresh * 2.0 ** min(self._failures - 1, 30)
                # With no keys at all nothing can be verified: try again sooner.
                cap = self._cache_seconds if self._keys else NO_KEYS_BACKOFF_CAP
                delay = min(backoff, max(self._min_refresh, cap))
                self._next_attempt = self._clock() + delay
                log.warning("jwks_fetch_failed", error=type(exc).__name__, retry_in=delay)
                return
            self._keys, self._failures = keys, 0
            self._fetched_at = self._clock()
            self._next_attempt = self._fetched_at + self._min_refresh


class TokenVerifier:
    def __init__(self, source: JwksSource, settings: Settings) -> None:
        self._source = source
        self._issuer = settings.jwt_issuer
        self._audience = settings.jwt_audience

    async def verify(self, token: str) -> Principal:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError as exc:
            raise Unauthorized("The bearer token is malformed.") from exc
        kid = header.get("kid")
        if header.get("alg") != "EdDSA" or not isinstance(kid, str):
            raise Unauthorized("The bearer token is not signed with an accepted key.")
        key = await self._source.key(kid)
        if key is None:
            raise Unauthorized("The bearer token is signed with an unknown key.")
        try:
            claims = jwt.decode(
                token,
                key.key,
                algorithms=["EdDSA"],
                audience=self._audience,
                issuer=self._issuer,
                options={"require": ["exp", "iat", "sub", "iss", "aud"]},
            )
            return Principal(user_id=str(claims["sub"]), role=Role(str(claims.get("role"))), token=token)
        except jwt.ExpiredSignatureError as exc:
            raise Unauthorized("The bearer token has expired.") from exc
        except (jwt.InvalidTokenError, ValueError) as exc:
            raise Unauthorized("The bearer token is not valid.") from exc


class ServiceTokens:
    """Short-lived tokens that one service presents to another's internal API."""

    def __init__(self, secret: str, service: str) -> None:
        self._secret = secret
        self._service = service

    def issue(self, ttl: int = 60) -> str:
        now = int(time.time())
        claims = {"sub": self._service, "aud": SERVICE_AUDIENCE, "iat": now, "exp": now + ttl}
        return jwt.encode(claims, self._secret, algorithm="HS256")

    def verify(self, token: str) -> str:
        try:
            claims = jwt.decode(
                token,
                self._secret,
                algorithms=["HS256"],
                audience=SERVICE_AUDIENCE,
                options={"require": ["exp", "sub", "aud"]},
            )
        except jwt.InvalidTokenError as exc:
            raise Unauthorized("A valid service token is required.") from exc
        return str(claims["sub"])


# Swagger's Authorize button logs in through the user service's /login (OAuth2 password form).
bearer_scheme = OAuth2PasswordBearer(tokenUrl="login", auto_error=False)


# Where a request keeps its caller once verified (in the ASGI scope's state).
_VERIFIED_PRINCIPAL = "winkit.principal"


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header; None for anything else."""
    scheme, _, token = (authorization or "").partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


async def verified_principal(scope: Scope, token: str) -> Principal:
    """The caller ``token`` names, verified once per request: the idempotency layer (which
    needs the caller before routing) and the route's dependency share the result."""
    state = scope.setdefault("state", {})
    principal = state.get(_VERIFIED_PRINCIPAL)
    if principal is None:
        verifier: TokenVerifier = scope["app"].state.token_verifier
        principal = state[_VERIFIED_PRINCIPAL] = await verifier.verify(token)
    assert isinstance(principal, Principal)
    return principal


async def current_principal(request: Request, _: Annotated[str | None, Depends(bearer_scheme)]) -> Principal:
    token = bearer_token(request.headers.get("authorization"))
    if token is None:
        raise Unauthorized()
    return await verified_principal(request.scope, token)


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]


def ensure_self(principal: Principal, user_id: str | None) -> None:
    """The original API let clients name a user_id; it may stay, but only as the caller's own."""
    if user_id is not None and user_id != principal.user_id:
        raise Forbidden("user_id does not match the signed-in user.")


async def staff_principal(principal: CurrentPrincipal) -> Principal:
    if not principal.is_staff:
        raise Forbidden("Only staff and admins may do this.")
    return principal


StaffPrincipal = Annotated[Principal, Depends(staff_principal)]


async def calling_service(request: Request) -> str:
    token = bearer_token(request.headers.get("authorization"))
    if token is None:
        raise Unauthorized("A valid service token is required.")
    tokens: ServiceTokens = request.app.state.service_tokens
    return tokens.verify(token)


CallingService = Annotated[str, Depends(calling_service)]
