"""Forwards /api/<service>/... to that service: streamed both ways over pooled connections."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from urllib.parse import quote

import httpx
from starlette.datastructures import Headers
from starlette.requests import ClientDisconnect
from starlette.types import Receive, Scope, Send

from winkit.gateway.edge import Edge
from winkit.gateway.policy import is_internal, is_limited_per_email
from winkit.gateway.upstreams import Upstreams
from winkit.platform.errors import BadGateway, GatewayTimeout, NotFound, PayloadTooLarge, ServiceUnavailable

RawHeaders = list[tuple[bytes, bytes]]

_HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
    }
)
# The gateway sets these itself, so a client cannot choose what services see. Expect:
# uvicorn answers 100-continue here when the body is first read.
_NOT_FORWARDED = _HOP_BY_HOP | {
    b"expect",
    b"forwarded",
    b"x-forwarded-for",
    b"x-forwarded-host",
    b"x-forwarded-prefix",
    b"x-forwarded-proto",
    b"x-request-id",
}
_NOT_FORWARDED_ANONYMOUS = _NOT_FORWARDED | {b"authorization"}
# uvicorn adds its own date and server, RequestContextMiddleware the (same) request id.
_NOT_RETURNED = _HOP_BY_HOP | {b"date", b"server", b"x-request-id"}
# CORS is decided at the edge only; a service's own answer would duplicate or contradict it.
_CORS_RESPONSE_PREFIX = b"access-control-"


class ServiceProxy:
    """The ASGI app mounted at ``/api/<service>``."""

    def __init__(self, service: str, upstreams: Upstreams, edge: Edge, max_body: int) -> None:
        self.service = service
        self.path = self.prefix = f"/api/{service}"
        self._prefix_bytes = self.prefix.encode()
        self._base = httpx.URL(upstreams.urls[service])
        self._upstreams = upstreams
        self._edge = edge
        self._max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # FastAPI records no route for a mount; this one labels the request's metrics by
        # prefix (RequestContextMiddleware reads scope["route"].path).
        scope["route"] = self
        if scope["type"] != "http":
            await send({"type": "websocket.close"})  # WebSockets are not proxied
            return
        try:
            upstream = await self._forward(scope, receive)
        except ClientDisconnect:
            return  # nobody is left to answer
        if upstream.headers.get("content-type", "").startswith("text/event-stream"):
            await _relay_events(upstream, send, receive)
        else:
            await _relay(upstream, send)

    async def _forward(self, scope: Scope, receive: Receive) -> httpx.Response:
        method: str = scope["method"]
        url = self._upstream_url(scope)
        # Decided on the path as it will be sent: decoded and with dot segments resolved,
        # so /api/catalog/x/../internal/... or %69nternal cannot slip through.
        path = url.path
        if is_internal(path):
            raise NotFound(f"No route matches {method} {scope['path']}.")
        headers = Headers(scope=scope)
        client_ip = scope["client"][0] if scope.get("client") else "unknown"
        authorization = headers.get("authorization")
        principal = await self._edge.admit(self.service, method, path, client_ip, authorization)
        # A token the edge did not accept (on a public route) does not travel further.
        drop = _NOT_FORWARDED if principal is not None or authorization is None else _NOT_FORWARDED_ANONYMOUS

        content = self._body(receive, headers)
        if content is not None and is_limited_per_email(self.service, method, path):
            # A small sign-in body is read whole to find the email, then sent on unchanged.
            content = b"".join([chunk async for chunk in content])
            await self._edge.admit_email(scope, content)

        # A live stream (server-sent events) may stay quiet between heartbeats for as long
        # as it likes: only connecting is timed.
        stream = "text/event-stream" in headers.get("accept", "")
        timeout = self._upstreams.stream_timeout if stream else httpx.USE_CLIENT_DEFAULT
        request = self._upstreams.client.build_request(
            method, url, headers=self._upstream_headers(scope, client_ip, drop), content=content, timeout=timeout
        )
        try:
            return await self._upstreams.client.send(request, stream=True)
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            raise ServiceUnavailable(
                f"The {self.service} service is unavailable; try again shortly.", service=self.service
            ) from exc
        except httpx.TimeoutException as exc:
            raise GatewayTimeout(f"The {self.service} service did not answer in time.", service=self.service) from exc
        except httpx.TransportError as exc:
            raise BadGateway(f"The {self.service} service gave no valid answer.", service=self.service) from exc

    def _upstream_url(self, scope: Scope) -> httpx.URL:
        # The raw path keeps the client's escaping (an id holding %2F stays one segment);
        # the decoded one is the fallback when the prefix itself came escaped.
        raw_path: bytes = scope.get("raw_path") or b""
        if raw_path.startswith(self._prefix_bytes):
            target = raw_path[len(self._prefix_bytes) :]
        else:
            target = quote(scope["path"][len(self.prefix) :]).encode()
        query: bytes = scope["query_string"]
        return self._base.copy_with(raw_path=target + b"?" + query if query else target)

    def _upstream_headers(self, scope: Scope, client_ip: str, drop: frozenset[bytes]) -> RawHeaders:
        # Host stays the client's: services build absolute links from it and the prefix.
        return [
            *_without(scope["headers"], drop),
            (b"x-forwarded-for", client_ip.encode()),
            (b"x-forwarded-proto", scope["scheme"].encode()),
            (b"x-forwarded-prefix", self._prefix_bytes),
            (b"x-request-id", scope["state"]["request_id"].encode()),
        ]

    def _body(self, receive: Receive, headers: Headers) -> AsyncIterator[bytes] | None:
        length = headers.get("content-length")
        if length is None and "transfer-encoding" not in headers:
            return None
        if length is not None and int(length) > self._max_body:
            raise PayloadTooLarge(f"The request body is over {self._max_body} bytes.")
        return _body_chunks(receive, self._max_body)


async def _body_chunks(receive: Receive, limit: int) -> AsyncIterator[bytes]:
    """The client's body as it arrives; a chunked one is cut off once over ``limit``."""
    size = 0
    more = True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        chunk: bytes = message.get("body", b"")
        more = message.get("more_body", False)
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"The request body is over {limit} bytes.")
        if chunk:
            yield chunk


async def _relay(upstream: httpx.Response, send: Send) -> None:
    """The service's answer as it arrives, bytes untouched (compressed stays compressed)."""
    try:
        await send({"type": "http.response.start", "status": upstream.status_code, "headers": _returned(upstream)})
        # One chunk is held back so the last goes out marked final: a one-chunk body is then
        # a single message, which GZipMiddleware can measure (and leave alone when small).
        held = b""
        async for chunk in upstream.aiter_raw():
            if held:
                await send({"type": "http.response.body", "body": held, "more_body": True})
            held = chunk
        await send({"type": "http.response.body", "body": held, "more_body": False})
    finally:
        await upstream.aclose()


async def _relay_events(upstream: httpx.Response, send: Send, receive: Receive) -> None:
    """A live stream: each event goes out the moment it arrives, until either side leaves.
    The client's leaving is watched for, so a quiet stream does not outlive its reader."""

    async def pump() -> None:
        await send({"type": "http.response.start", "status": upstream.status_code, "headers": _returned(upstream)})
        async for chunk in upstream.aiter_raw():
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def client_left() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass

    tasks = [asyncio.create_task(pump()), asyncio.create_task(client_left())]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        # The stream is over either way; how it ended (a side hanging up) is not an error.
        await asyncio.gather(*tasks, return_exceptions=True)
        await upstream.aclose()


def _returned(upstream: httpx.Response) -> RawHeaders:
    headers = [(name.lower(), value) for name, value in upstream.headers.raw]
    return _without(headers, _NOT_RETURNED, _CORS_RESPONSE_PREFIX)


def _without(headers: RawHeaders, drop: frozenset[bytes], drop_prefix: bytes | None = None) -> RawHeaders:
    """Headers (lower-case names) minus ``drop`` and whatever the Connection header lists."""
    listed = [value for name, value in headers if name == b"connection"]
    if listed:
        drop = drop | {token.strip() for value in listed for token in value.lower().split(b",")}
    return [
        (name, value)
        for name, value in headers
        if name not in drop and not (drop_prefix and name.startswith(drop_prefix))
    ]
