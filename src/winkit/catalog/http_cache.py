"""Conditional, cached answers to the catalog's reads.

Every read answer carries a strong ``ETag``; a request whose ``If-None-Match`` names it
gets ``304 Not Modified`` (RFC 9110 §13.1.2). Answers are kept by exact path and query
string until the read model changes, and ``CachedReads`` serves them again without
routing: only answers a route produced are kept, each after the route validated that same
path and query, so a cached answer is always the one the route would give.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from starlette.datastructures import Headers
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from winkit.catalog.read_model import CatalogReadModel, Representation

# Bodies kept at most, all answers together: one page of a large catalog is small, but
# the whole of a 10,000-product catalog is ~4 MB.
MAX_CACHED_BYTES = 32 * 2**20

# An entity tag's opaque part, with any weakness prefix dropped: comparison is weak.
_OPAQUE_TAG = re.compile(r'(?:W/)?("[^"]*")')


def if_none_match(scope: Scope) -> str | None:
    values = Headers(scope=scope).getlist("if-none-match")
    return ", ".join(values) if values else None


def names(if_none_match: str, etag: str) -> bool:
    """Whether an If-None-Match value (``*`` or a list of entity tags) names ``etag``."""
    return if_none_match.strip() == "*" or etag in _OPAQUE_TAG.findall(if_none_match)


def conditional(representation: Representation, scope: Scope) -> Response:
    headers = {"ETag": representation.etag}
    condition = if_none_match(scope)
    if condition is not None and names(condition, representation.etag):
        return Response(status_code=304, headers=headers)
    return Response(representation.body, media_type="application/json", headers=headers)


@dataclass(frozen=True, slots=True)
class _Kept:
    representation: Representation
    route: Any  # the route that answered: metrics and logs name it as after routing
    size: int


class ResponseCache:
    """Answers given since the read model last changed, by exact path and query string."""

    def __init__(self, model: CatalogReadModel, max_bytes: int = MAX_CACHED_BYTES) -> None:
        self._model = model
        self._max_bytes = max_bytes
        self._kept: dict[tuple[str, bytes], _Kept] = {}
        self._bytes = 0
        self._generation = model.generation

    def _current(self) -> dict[tuple[str, bytes], _Kept]:
        if self._generation != self._model.generation:
            self._kept.clear()
            self._bytes = 0
            self._generation = self._model.generation
        return self._kept

    def get(self, scope: Scope) -> _Kept | None:
        return self._current().get((scope["path"], scope["query_string"]))

    def answer(self, scope: Scope, representation: Representation) -> Response:
        """Keep a route's answer for this path and query, and give it (or 304)."""
        kept = self._current()
        key = (scope["path"], scope["query_string"])
        size = len(representation.body) + len(key[0]) + len(key[1])
        if key not in kept and size <= self._max_bytes:
            while self._bytes + size > self._max_bytes:
                self._bytes -= kept.pop(next(iter(kept))).size  # the oldest goes first
            kept[key] = _Kept(representation, scope.get("route"), size)
            self._bytes += size
        return conditional(representation, scope)


class CachedReads:
    """Serves kept answers to GETs before routing. Installed innermost, so request ids,
    metrics, access logs and CORS apply to these answers as to any other."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "GET":
            kept = scope["app"].state.response_cache.get(scope)
            if kept is not None:
                scope["route"] = kept.route
                await conditional(kept.representation, scope)(scope, receive, send)
                return
        await self.app(scope, receive, send)
