"""The transactional outbox and the consumers' inbox, both in the service's own database.

A service writes its state change and the event document in one MongoDB transaction
(a unit of work, ``core.store``); once that commits, the events are handed to the relay
(``EventBus``), which publishes them. A consumer records each event it handled in its
inbox (``processed_events``) in the same transaction as its own write (``apply_once``), so
a redelivered or duplicated event changes nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime

import structlog
from pymongo import ASCENDING, IndexModel
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import OperationFailure

from winkit.core import tracing
from winkit.core.database import Document
from winkit.core.event_contracts import EventData

log = structlog.get_logger("winkit.events")

# Outbox documents read, published and marked at a time.
RELAY_PAGE = 100
# Committed events kept for a relay that is not taking them (no connection yet); past
# this they are dropped, and the relay reads them from the outbox instead.
HANDOVER_LIMIT = 10 * RELAY_PAGE

# Set on an outbox document until it is published. The relay looks pending events up by
# it, not by ``published_at: null``: SecantusDB answers a null match by reading the whole
# outbox (164 ms at 20,000 events against 1.8 ms by this flag, measured), every second.
PENDING = "pending"
# Outbox field holding the trace context (W3C headers) the event was written in, if traced;
# the relay sends it in the message headers, never in the event itself.
TRACE_CONTEXT = "trace_context"


def new_event(data: EventData, source: str) -> Document:
    """An outbox document announcing ``data`` (its type and version are its model's);
    insert it in the same transaction as the change it announces."""
    now = datetime.now(UTC)
    doc = {
        "_id": uuid.uuid4().hex,
        "type": data.TYPE,
        "version": data.VERSION,
        "source": source,
        "occurred_at": now.isoformat(),
        "data": data.model_dump(mode="json"),
        "created_at": now,
        "published_at": None,
        PENDING: True,
    }
    if trace_context := tracing.current_context():
        doc[TRACE_CONTEXT] = trace_context
    return doc


class Outbox:
    """The ``outbox`` collection, and what this process has committed to it or published
    from it that the collection does not show yet."""

    def __init__(self, db: AsyncDatabase[Document], source: str) -> None:
        self.collection = db["outbox"]
        # The service whose events these are (each event's ``source``).
        self.source = source
        self.wake = asyncio.Event()
        # Events written by each unit of work running (``core.store``): handed over on commit.
        self._staged: dict[AsyncClientSession, list[Document]] = {}
        # Committed here, not yet taken by the relay; whether some were dropped meanwhile.
        self._committed: list[Document] = []
        self._dropped = False
        # Published, not yet marked in the collection (the relay marks them in batches).
        self._published: list[str] = []

    async def ensure_indexes(self) -> None:
        await self.collection.create_indexes(
            [
                IndexModel([(PENDING, ASCENDING), ("created_at", ASCENDING)], name="pending_by_age"),
                # Published events are kept a week for inspection, then swept.
                IndexModel([("published_at", ASCENDING)], expireAfterSeconds=7 * 86_400, name="published_ttl"),
            ]
        )
        # What came before the flag: the index it replaces, and events not yet published.
        with contextlib.suppress(OperationFailure):
            await self.collection.drop_index("published_at_1_created_at_1")
        await self.collection.update_many(
            {"published_at": None, PENDING: {"$exists": False}}, {"$set": {PENDING: True}}
        )

    async def add(self, session: AsyncClientSession, *events: Document) -> None:
        if events:
            await self.collection.insert_many(list(events), session=session)
            if session in self._staged:
                self._staged[session].extend(events)

    def stage(self, session: AsyncClientSession) -> None:
        """Collect what ``add`` writes in this transaction attempt (a retry starts over)."""
        self._staged[session] = []

    def unstage(self, session: AsyncClientSession) -> list[Document]:
        return self._staged.pop(session, [])

    def committed(self, events: list[Document]) -> None:
        """Hand events this process has just committed to the relay, and wake it."""
        self._committed.extend(events)
        if len(self._committed) > HANDOVER_LIMIT:
            self._committed, self._dropped = [], True
        self.wake.set()

    def take_committed(self) -> tuple[list[Document], bool]:
        """The events handed over since the last call, and whether some were dropped."""
        taken, dropped = self._committed, self._dropped
        self._committed, self._dropped = [], False
        return taken, dropped

    async def pending(self, limit: int = RELAY_PAGE, before: datetime | None = None) -> list[Document]:
        """Unpublished events, oldest first; only those created before ``before`` if given."""
        query: Document = {PENDING: True}
        if before is not None:
            query["created_at"] = {"$lt": before}
        cursor = self.collection.find(query).sort("created_at", ASCENDING).limit(limit)
        return await cursor.to_list()

    def published(self, event_ids: Iterable[str]) -> None:
        self._published.extend(event_ids)

    @property
    def unmarked(self) -> int:
        return len(self._published)

    async def mark_published(self) -> None:
        """Mark every event recorded as published, in one write."""
        marking = self._published[:]
        if marking:
            await self.collection.update_many(
                {"_id": {"$in": marking}}, {"$set": {"published_at": datetime.now(UTC)}, "$unset": {PENDING: ""}}
            )
            del self._published[: len(marking)]


class Inbox:
    """The ``processed_events`` collection: which consumer has handled which event."""

    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.collection = db["processed_events"]

    async def claim(self, session: AsyncClientSession, consumer: str, event_id: str) -> None:
        """Record that ``consumer`` handled the event; DuplicateKeyError if it already had."""
        await self.collection.insert_one({"_id": f"{consumer}:{event_id}", "at": datetime.now(UTC)}, session=session)
