"""Live views over server-sent events (``text/event-stream``).

Domain code yields ``ServerSentEvent`` objects (a ``comment`` one is a heartbeat); the
route hands the iterator to ``event_stream``. Heartbeats keep proxies from closing an
idle stream; the gateway neither buffers nor times out a stream.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi.encoders import jsonable_encoder
from fastapi.sse import EventSourceResponse, ServerSentEvent, format_sse_event

HEARTBEAT = ServerSentEvent(comment="ping")

# Shown in the OpenAPI document for stream routes.
STREAM_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/event-stream": {}}, "description": "A stream of server-sent events"}
}


def encode(event: ServerSentEvent) -> bytes:
    data = None if event.data is None else json.dumps(jsonable_encoder(event.data), separators=(",", ":"))
    return format_sse_event(data_str=data, event=event.event, id=event.id, retry=event.retry, comment=event.comment)


async def _encoded(events: AsyncIterator[ServerSentEvent]) -> AsyncIterator[bytes]:
    async for event in events:
        yield encode(event)


def event_stream(events: AsyncIterator[ServerSentEvent]) -> EventSourceResponse:
    # no-cache: a stream is never stored; X-Accel-Buffering: nginx-style proxies pass it on at once.
    return EventSourceResponse(_encoded(events), headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
