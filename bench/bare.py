"""The floor to compare against: a raw ASGI callable that answers recorded responses.

Given a JSON file (``BENCH_BARE_RESPONSES``) of ``{path: {"status", "headers", "body_b64"}}``
it answers each path with exactly those bytes and headers, doing nothing else: what uvicorn
itself costs, run with the same options as the services (see bench.wrk.start_bare).
"""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path
from typing import Any

# uvicorn sets these itself (or they depend on the connection).
SKIPPED_HEADERS = {"date", "server", "content-length", "connection", "transfer-encoding", "keep-alive"}


def load_responses(path: str) -> dict[str, tuple[int, list[tuple[bytes, bytes]], bytes]]:
    recorded = json.loads(Path(path).read_text(encoding="utf-8"))
    responses = {}
    for url_path, response in recorded.items():
        body = base64.b64decode(response["body_b64"])
        headers = [(k.lower().encode(), v.encode()) for k, v in response["headers"] if k.lower() not in SKIPPED_HEADERS]
        headers.append((b"content-length", str(len(body)).encode()))
        responses[url_path] = (int(response["status"]), headers, body)
    return responses


def create_app() -> Any:
    responses = load_responses(os.environ["BENCH_BARE_RESPONSES"])
    not_found = (404, [(b"content-type", b"text/plain"), (b"content-length", b"9")], b"not found")

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        status, headers, body = responses.get(scope["path"], not_found)
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return app
