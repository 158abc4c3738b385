"""Safe retries for every write: the same ``Idempotency-Key`` runs a request once.

For an authenticated POST, PATCH or DELETE that carries ``Idempotency-Key``, the first
request's successful answer (2xx) is stored for a day in the service's own
``idempotency_keys`` collection, keyed by the caller, method, path and key. A retry gets
that answer again, with ``Idempotent-Replayed: true``, and changes nothing. The same key
with a different body is refused (422); a retry while the first is still running gets 409.
A refusal (4xx: out of stock, prices changed, an empty cart...) or a failure (5xx) changed
nothing and is not stored: once the shopper has fixed what was wrong, a retry with the
same key runs for real.

Requests without a token are passed through unchanged: a key alone must not let one
client read another's stored answer.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

from pymongo import ASCENDING, IndexModel
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from winkit.core.asgi import read_body, replay_body
from winkit.core.auth import bearer_token, verified_principal
from winkit.core.database import Document
from winkit.core.errors import PROBLEM_TYPE_BASE, Problem, problem_response

HEADER = b"idempotency-key"
MAX_KEY_LENGTH = 200
KEEP_SECONDS = 86_400
_WRITES = frozenset({"POST", "PATCH", "DELETE"})


async def ensure_indexes(db: AsyncDatabase[Document]) -> None:
    await db["idempotency_keys"].create_indexes(
        [IndexModel([("created_at", ASCENDING)], expireAfterSeconds=KEEP_SECONDS)]
    )


class IdempotencyMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in _WRITES:
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        key = headers.get(HEADER)
        if key is None:
            await self.app(scope, receive, send)
            return
        if not 0 < len(key) <= MAX_KEY_LENGTH or not key.isascii():
            response = problem_response(422, f"Idempotency-Key must be 1 to {MAX_KEY_LENGTH} ASCII characters.")
            await response(scope, receive, send)
            return
        user_id = await self._caller(scope, headers.get(b"authorization"))
        if user_id is None:
            await self.app(scope, receive, send)
            return

        body = await read_body(receive)
        state = scope["app"].state
        records = state.db["idempotency_keys"]
        record_id = hashlib.sha256(
            b"\0".join([user_id.encode(), scope["method"].encode(), scope["path"].encode(), key])
        ).hexdigest()
        fingerprint = hashlib.sha256(body).hexdigest()
        try:
            await records.insert_one({"_id": record_id, "fingerprint": fingerprint, "created_at": datetime.now(UTC)})
        except DuplicateKeyError:
            await self._replay(await records.find_one({"_id": record_id}), fingerprint, scope, receive, send)
            return

        captured: dict[str, Any] = {"body": b""}
        held: list[Message] = []

        async def settle() -> None:
            """Record the outcome: a success is kept for replays; anything else is
            forgotten, so a retry runs it again, for real."""
            if 200 <= captured.get("status", 500) < 300:
                done = {"status": captured["status"], "headers": captured["headers"], "body": captured["body"]}
                await records.update_one({"_id": record_id}, {"$set": done})
            else:
                await records.delete_one({"_id": record_id})

        async def capture(message: Message) -> None:
            # The answer is held back until its outcome is recorded: a client that retries
            # the moment it has the answer must find it, not a request "still running".
            held.append(message)
            if message["type"] == "http.response.start":
                captured["status"] = message["status"]
                captured["headers"] = list(message.get("headers", []))
                return
            captured["body"] += message.get("body", b"")
            if message.get("more_body", False):
                return
            await settle()
            captured["settled"] = True
            for part in held:
                await send(part)

        try:
            await self.app(scope, replay_body(body, receive), capture)
        finally:
            if not captured.get("settled"):  # no whole answer: nothing to replay
                await records.delete_one({"_id": record_id})

    async def _caller(self, scope: Scope, authorization: bytes | None) -> str | None:
        token = bearer_token((authorization or b"").decode("latin-1"))
        if token is None:
            return None
        try:
            principal = await verified_principal(scope, token)
        except Problem:
            return None  # the route answers 401 itself
        return principal.user_id

    async def _replay(
        self, record: Document | None, fingerprint: str, scope: Scope, receive: Receive, send: Send
    ) -> None:
        if record is not None and record["fingerprint"] != fingerprint:
            response = problem_response(
                422,
                "This Idempotency-Key was used with a different request.",
                type_=PROBLEM_TYPE_BASE + "idempotency-key-reused",
            )
        elif record is None or "status" not in record:
            response = problem_response(409, "A request with this Idempotency-Key is still running; retry shortly.")
        else:
            headers = [*record["headers"], (b"idempotent-replayed", b"true")]
            await send({"type": "http.response.start", "status": record["status"], "headers": headers})
            await send({"type": "http.response.body", "body": record["body"]})
            return
        await response(scope, receive, send)
