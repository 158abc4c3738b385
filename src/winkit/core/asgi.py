"""Small ASGI helpers for middleware that must look at a request body before the app."""

from __future__ import annotations

from starlette.types import Message, Receive


async def read_body(receive: Receive) -> bytes:
    body = b""
    while True:
        message = await receive()
        chunk: bytes = message.get("body", b"")
        body += chunk
        if not message.get("more_body", False):
            return body


def replay_body(body: bytes, receive: Receive | None = None) -> Receive:
    """A receive that hands over a body already read, then (if given) the real channel,
    so the app still hears a disconnect."""
    delivered = False

    async def replay() -> Message:
        nonlocal delivered
        if delivered and receive is not None:
            return await receive()
        delivered = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay
