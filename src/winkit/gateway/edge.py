"""What the gateway checks before a request may reach a service: limits and tokens."""

from __future__ import annotations

import json

from starlette.requests import Request
from starlette.types import Scope

from winkit.gateway.policy import is_sign_in, needs_token
from winkit.gateway.ratelimit import RateLimits
from winkit.platform.asgi import replay_body
from winkit.platform.auth import JwksSource, Principal, TokenVerifier
from winkit.platform.email import email_key
from winkit.platform.errors import Unauthorized
from winkit.platform.settings import Settings

_FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


class Edge:
    def __init__(self, settings: Settings) -> None:
        self.limits = RateLimits(settings)
        source = JwksSource(settings.effective_jwks_url, settings.jwks_cache_seconds)
        self._verifier = TokenVerifier(source, settings)

    async def admit(
        self, service: str, method: str, path: str, client_ip: str, authorization: str | None
    ) -> Principal | None:
        """The caller, or None for an anonymous one; raise the problem (401, 429) that
        stops this request here, if any."""
        # The per-IP count comes first, so a flood of forged tokens is cut off before
        # each one costs a signature check.
        await self.limits.hit_default("ip", client_ip)
        principal = None
        if authorization is not None:
            try:
                principal = await self._verify(authorization)
            except Unauthorized:
                # A public route serves a stale or broken token as anonymous: an app that
                # kept an expired token can still show the catalog.
                if needs_token(service, method, path):
                    raise
        if principal is not None:
            await self.limits.hit_default("user", principal.user_id)
        elif needs_token(service, method, path):
            raise Unauthorized()
        if is_sign_in(service, method, path):
            await self.limits.hit_sign_in("ip", client_ip)
        return principal

    async def admit_email(self, scope: Scope, body: bytes) -> None:
        """Login and code requests also count per email, whichever IPs they come from.

        The count is per identity (winkit.platform.email.email_key), the key the user
        service finds accounts and codes by: every spelling of one address counts against
        one limit, and a spelling counted apart is an address of its own. An invalid address
        matches no account, so only the per-IP limit counts it."""
        key = await _email_in(scope, body)
        if key is not None:
            await self.limits.hit_sign_in("email", key)

    async def _verify(self, authorization: str) -> Principal:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized("The Authorization header must hold a bearer token.")
        return await self._verifier.verify(token.strip())


async def _email_in(scope: Scope, body: bytes) -> str | None:
    """The identity of the address a sign-in body names: JSON ``email``, or the OAuth2
    form's ``username``; None if there is none or it is not valid."""
    request = Request(scope, replay_body(body))
    value: object = None
    if request.headers.get("content-type", "").startswith(_FORM_TYPES):
        async with request.form() as form:
            value = form.get("username") or form.get("email")
    else:
        try:
            data = json.loads(body)
        except ValueError:
            return None  # the service answers 422; the per-IP limit still counted it
        value = data.get("email") if isinstance(data, dict) else None
    return email_key(value) if isinstance(value, str) else None
