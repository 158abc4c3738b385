"""Which service paths are public, which need a token, which are sign-in routes.

Paths here are the service's own (``/profile``), as the gateway will send them upstream.
"""

from __future__ import annotations

from typing import get_args

from winkit.platform.settings import ServiceName

SERVICE_NAMES: tuple[ServiceName, ...] = get_args(ServiceName)

# Orders and delivery need a token everywhere except on their service pages.
_OPEN_SERVICE_PATHS = frozenset({"/", "/health", "/docs", "/openapi.json"})
_READ_METHODS = frozenset({"GET", "HEAD"})
# Sign-in routes get the strict limit; those naming an account also get it per email.
_SIGN_IN_PATHS = frozenset({"/login", "/register", "/otp/send"})
_PER_EMAIL_PATHS = frozenset({"/login", "/otp/send"})


# Server-to-server routes and each service's own metrics are for the cluster, not the public.
_PRIVATE_FIRST_SEGMENTS = frozenset({"internal", "metrics"})


def is_internal(path: str) -> bool:
    """``/internal/...`` and a service's ``/metrics`` are never exposed."""
    first_segment = next((segment for segment in path.split("/") if segment), "")
    return first_segment in _PRIVATE_FIRST_SEGMENTS


def needs_token(service: str, method: str, path: str) -> bool:
    """Refused at the edge without a token (services check roles and ownership themselves)."""
    if service == "users":
        return path == "/profile" or path == "/addresses" or path.startswith("/addresses/")
    if service == "catalog":
        return method not in _READ_METHODS
    return path not in _OPEN_SERVICE_PATHS


def is_sign_in(service: str, method: str, path: str) -> bool:
    return service == "users" and method == "POST" and path in _SIGN_IN_PATHS


def is_limited_per_email(service: str, method: str, path: str) -> bool:
    """Sign-in routes whose body names the account are also limited per email."""
    return is_sign_in(service, method, path) and path in _PER_EMAIL_PATHS
