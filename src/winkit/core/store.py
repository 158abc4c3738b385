"""What every service's store stands on: its database, its outbox, units of work, and the
models its documents become.

A unit of work is one operation's writes and the events announcing them, committed
together or not at all (``Store.atomically``). Inside one, every operation of a store on
that database runs in its transaction without being told: the session is kept in a
context variable, so domain code never sees a driver session. A unit of work started
inside another (a consumer's handler runs inside the one that records the event handled)
joins it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from typing import Self, TypeVar

import structlog
from pydantic import BaseModel, ConfigDict
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from winkit.core.database import Document
from winkit.core.event_contracts import Event, EventData
from winkit.core.outbox import Inbox, Outbox, new_event

log = structlog.get_logger("winkit.events")

T = TypeVar("T")

# The unit of work running in this context: its database and its session.
_running: ContextVar[tuple[AsyncDatabase[Document], AsyncClientSession] | None] = ContextVar(
    "winkit_unit_of_work", default=None
)


def session_for(db: AsyncDatabase[Document]) -> AsyncClientSession | None:
    """The session of the unit of work running on ``db`` here, if any. Another service's
    (when services share a process, as in tests) is not this database's."""
    running = _running.get()
    if running is None:
        return None
    running_db, session = running
    return session if running_db.client is db.client and running_db.name == db.name else None


async def unit_of_work(db: AsyncDatabase[Document], outbox: Outbox | None, work: Callable[[], Awaitable[T]]) -> T:
    """Run ``work`` in one transaction (run again from the start on a write conflict), then
    hand the events it announced to the relay. Inside a unit of work already running on
    ``db``, ``work`` joins it."""
    if session_for(db) is not None:
        return await work()

    async def attempt(session: AsyncClientSession) -> T:
        if outbox is not None:
            outbox.stage(session)
        token = _running.set((db, session))
        try:
            return await work()
        finally:
            _running.reset(token)

    async with db.client.start_session() as session:
        try:
            result = await session.with_transaction(attempt)
        finally:
            events = outbox.unstage(session) if outbox is not None else []
    if outbox is not None:
        outbox.committed(events)
    return result


class AlreadyProcessed(Exception):
    pass


async def apply_once(
    db: AsyncDatabase[Document],
    outbox: Outbox,
    inbox: Inbox,
    consumer: str,
    event: Event,
    work: Callable[[], Awaitable[object]],
) -> None:
    """Run ``work`` and record the event as handled by ``consumer``, in one unit of work
    (which ``work``'s own units of work join).

    Raises AlreadyProcessed when this consumer has handled the event before.
    """

    async def claim_then_work() -> None:
        session = session_for(db)
        assert session is not None
        await inbox.claim(session, consumer, event.id)
        await work()

    try:
        await unit_of_work(db, outbox, claim_then_work)
    except DuplicateKeyError as exc:
        raise AlreadyProcessed(event.id) from exc
    # Once committed: e.g. the catalog handling order.cancelled is stock given back.
    log.info("event_handled", consumer=consumer, event_type=event.type, event_id=event.id)


class Store:
    """The base of each service's store: it alone touches the database. Its operations
    pass ``self.session`` to the driver, so they run in the unit of work running, if any."""

    def __init__(self, db: AsyncDatabase[Document], outbox: Outbox | None = None) -> None:
        self.db = db
        self._outbox = outbox

    @property
    def session(self) -> AsyncClientSession | None:
        return session_for(self.db)

    async def atomically(self, work: Callable[[], Awaitable[T]]) -> T:
        """Run ``work`` (which calls this store) as one unit of work; see ``unit_of_work``."""
        return await unit_of_work(self.db, self._outbox, work)

    async def announce(self, *events: EventData) -> None:
        """Queue events in the outbox, in the unit of work running: they are published once
        it commits, and never if it does not."""
        session = self.session
        if self._outbox is None or session is None:
            raise RuntimeError("events are announced inside a unit of work of a store with an outbox")
        await self._outbox.add(session, *(new_event(event, self._outbox.source) for event in events))


class StoredModel(BaseModel):
    """A domain object as its store keeps it: stores turn documents into these
    (``from_document``) and back (``to_document``); nothing above a store sees a document.
    Fields a newer release added are ignored, not refused."""

    model_config = ConfigDict(arbitrary_types_allowed=True, validate_by_name=True, validate_by_alias=True)

    @classmethod
    def from_document(cls, doc: Document) -> Self:
        return cls.model_validate(doc)

    @classmethod
    def from_optional(cls, doc: Document | None) -> Self | None:
        return None if doc is None else cls.from_document(doc)

    def to_document(self) -> Document:
        return self.model_dump(by_alias=True)
