"""Events between services: a transactional outbox, a relay to NATS JetStream, and
durable, idempotent consumers.

A service writes its state change and the event document in one MongoDB transaction.
The relay publishes pending outbox documents with ``Nats-Msg-Id`` = event id (JetStream
drops duplicates within its window) and marks them published. Consumers are durable pull
consumers; a handler records the event id in ``processed_events`` inside the same
transaction as its own write, and the message is acked only after that commits, so a
redelivered or duplicated event changes nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import nats
import structlog
from nats.aio.client import Client as NatsClient
from nats.errors import Error as NatsError
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, StreamConfig
from nats.js.errors import NotFoundError
from pymongo import ASCENDING, IndexModel
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError, PyMongoError

from winkit.platform.database import Document

log = structlog.get_logger("winkit.events")

STREAM = "WINKIT"
# Seconds the bus may take to stop (tasks, then the connection) when the service stops.
STOP_TIMEOUT = 3.0
SUBJECT_PREFIX = "winkit."
# Event types and their current schema version (docs/events.md describes each).
EVENT_VERSIONS = {
    "order.created": 1,
    "order.cancelled": 1,
    "delivery.opened": 1,
    "delivery.status_changed": 1,
    "stock.changed": 1,
}


@dataclass(frozen=True, slots=True)
class Event:
    id: str
    type: str
    version: int
    source: str
    occurred_at: str
    data: dict[str, Any]

    @classmethod
    def parse(cls, raw: bytes) -> Event:
        body = json.loads(raw)
        return cls(
            id=str(body["id"]),
            type=str(body["type"]),
            version=int(body["version"]),
            source=str(body["source"]),
            occurred_at=str(body["occurred_at"]),
            data=dict(body["data"]),
        )


def new_event(event_type: str, source: str, data: dict[str, Any]) -> Document:
    """An outbox document; insert it in the same transaction as the change it announces."""
    now = datetime.now(UTC)
    return {
        "_id": uuid.uuid4().hex,
        "type": event_type,
        "version": EVENT_VERSIONS[event_type],
        "source": source,
        "occurred_at": now.isoformat(),
        "data": data,
        "created_at": now,
        "published_at": None,
    }


def _wire(doc: Document) -> bytes:
    keys = ("type", "version", "source", "occurred_at", "data")
    return json.dumps({"id": doc["_id"], **{k: doc[k] for k in keys}}).encode()


def _where(url: str) -> str:
    """Host and port of a URL, for logs: a NATS URL may carry credentials."""
    parts = urlsplit(url)
    return f"{parts.hostname}:{parts.port}" if parts.port else str(parts.hostname)


class Outbox:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.collection = db["outbox"]
        self.processed = db["processed_events"]
        self.wake = asyncio.Event()

    async def ensure_indexes(self) -> None:
        await self.collection.create_indexes(
            [
                IndexModel([("published_at", ASCENDING), ("created_at", ASCENDING)]),
                # Published events are kept a week for inspection, then swept.
                IndexModel([("published_at", ASCENDING)], expireAfterSeconds=7 * 86_400, name="published_ttl"),
            ]
        )

    async def add(self, session: AsyncClientSession, *events: Document) -> None:
        if events:
            await self.collection.insert_many(list(events), session=session)

    async def pending(self, limit: int = 100) -> list[Document]:
        cursor = self.collection.find({"published_at": None}).sort("created_at", ASCENDING).limit(limit)
        return await cursor.to_list()

    async def mark_published(self, event_id: str) -> None:
        await self.collection.update_one({"_id": event_id}, {"$set": {"published_at": datetime.now(UTC)}})

    async def claim(self, session: AsyncClientSession, consumer: str, event_id: str) -> None:
        """Record that ``consumer`` handled the event; DuplicateKeyError if it already had."""
        await self.processed.insert_one({"_id": f"{consumer}:{event_id}", "at": datetime.now(UTC)}, session=session)


Handler = Callable[[Event], Awaitable[None]]


class AlreadyProcessed(Exception):
    pass


class EventBus:
    """One NATS connection per service: stream set-up, the outbox relay and consumers.

    Start-up never waits for NATS: a bounded first connect, then retries in the background
    while the service keeps serving HTTP; the outbox holds events until the bus is back.
    """

    def __init__(
        self, url: str, service: str, outbox: Outbox, *, connect_timeout: float, stream_replicas: int = 1
    ) -> None:
        self._url = url
        self._stream_replicas = stream_replicas
        self._service = service
        self._outbox = outbox
        self._connect_timeout = connect_timeout
        self._subscriptions: list[tuple[str, str, Handler]] = []
        self._listeners: list[tuple[str, Handler]] = []
        self._nc: NatsClient | None = None
        self._js: JetStreamContext | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False

    def subscribe(self, event_type: str, handler: Handler) -> None:
        durable = f"{self._service}-{event_type.replace('.', '-')}"
        self._subscriptions.append((event_type, durable, handler))

    def listen(self, event_type: str, handler: Handler) -> None:
        """Hear every event of this type as it is published, in every replica: a plain
        NATS subscription, not a durable consumer, so nothing is redelivered or kept while
        this replica is away. For live views that can re-read the truth, not for state."""
        self._listeners.append((event_type, handler))

    @property
    def connected(self) -> bool:
        return self._nc is not None and self._nc.is_connected

    async def start(self) -> None:
        self._tasks.append(asyncio.create_task(self._run(), name=f"{self._service}-bus"))

    async def stop(self) -> None:
        """Stop within a few seconds, whatever state NATS is in: nats-py may turn a
        cancellation during a fetch into a timeout, and closing may wait on a reconnect."""
        self._stopping = True
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=STOP_TIMEOUT)
        self._tasks.clear()
        if self._nc is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._nc.close(), STOP_TIMEOUT)

    async def _quiet(self, exc: Exception) -> None:
        log.debug("nats_error", error=str(exc))

    async def _connect(self) -> NatsClient:
        while True:
            try:
                nc = await nats.connect(
                    self._url,
                    connect_timeout=self._connect_timeout,
                    max_reconnect_attempts=1,
                    reconnect_time_wait=0.5,
                    error_cb=self._quiet,
                    name=f"winkit-{self._service}",
                )
            except (NatsError, OSError, TimeoutError) as exc:
                log.error("event_bus_unreachable", server=_where(self._url), error=str(exc) or type(exc).__name__)
                await asyncio.sleep(2)
                continue
            # Connected: from now on, ride out any outage by reconnecting forever.
            nc.options["max_reconnect_attempts"] = -1
            return nc

    async def _run(self) -> None:
        self._nc = await self._connect()
        self._js = self._nc.jetstream(timeout=5)
        while True:
            try:
                await self._ensure_stream()
                break
            except (NatsError, TimeoutError) as exc:
                log.warning("stream_setup_failed", error=str(exc))
                await asyncio.sleep(1)
        log.info("event_bus_connected", server=_where(self._url))
        for event_type, handler in self._listeners:
            await self._nc.subscribe(SUBJECT_PREFIX + event_type, cb=self._listener(event_type, handler))
        for event_type, durable, handler in self._subscriptions:
            self._tasks.append(asyncio.create_task(self._consume(event_type, durable, handler)))
        await self._relay()

    def _listener(self, event_type: str, handler: Handler) -> Callable[[Any], Awaitable[None]]:
        async def hear(message: Any) -> None:
            try:
                await handler(Event.parse(message.data))
            except Exception:
                log.exception("event_listener_failed", event_type=event_type)

        return hear

    async def _ensure_stream(self) -> None:
        """Create the stream, or raise its replica count to the configured one."""
        assert self._js is not None
        config = StreamConfig(
            name=STREAM,
            subjects=[f"{SUBJECT_PREFIX}>"],
            max_age=14 * 86_400,
            duplicate_window=300,
            num_replicas=self._stream_replicas,
        )
        try:
            info = await self._js.stream_info(STREAM)
        except NotFoundError:
            await self._js.add_stream(config)
            return
        if (info.config.num_replicas or 1) < self._stream_replicas:
            await self._js.update_stream(config)

    async def _relay(self) -> None:
        assert self._js is not None
        while True:
            self._outbox.wake.clear()
            try:
                for doc in await self._outbox.pending():
                    await self._js.publish(
                        SUBJECT_PREFIX + doc["type"], _wire(doc), headers={"Nats-Msg-Id": doc["_id"]}
                    )
                    await self._outbox.mark_published(doc["_id"])
            except (NatsError, TimeoutError, PyMongoError) as exc:
                log.warning("outbox_relay_paused", error=str(exc) or type(exc).__name__)
                await asyncio.sleep(1)
                continue
            # Woken at once by a local write; the timeout also catches writes by other replicas.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._outbox.wake.wait(), timeout=1.0)

    async def _consume(self, event_type: str, durable: str, handler: Handler) -> None:
        assert self._js is not None
        config = ConsumerConfig(
            durable_name=durable,
            ack_policy=AckPolicy.EXPLICIT,
            deliver_policy=DeliverPolicy.ALL,
            ack_wait=30,
            max_ack_pending=1000,
        )
        while True:
            try:
                sub = await self._js.pull_subscribe(
                    SUBJECT_PREFIX + event_type, durable=durable, stream=STREAM, config=config
                )
                break
            except (NatsError, TimeoutError) as exc:
                log.warning("consumer_setup_failed", consumer=durable, error=str(exc))
                await asyncio.sleep(1)
        while not self._stopping:
            try:
                messages = await sub.fetch(batch=50, timeout=1)
            except (NatsTimeoutError, TimeoutError):
                continue
            except NatsError as exc:
                log.warning("consumer_fetch_failed", consumer=durable, error=str(exc))
                await asyncio.sleep(1)
                continue
            for message in messages:
                await self._handle(durable, handler, message)

    async def _handle(self, durable: str, handler: Handler, message: Any) -> None:
        try:
            event = Event.parse(message.data)
        except (ValueError, KeyError, TypeError):
            log.error("event_malformed", consumer=durable)
            await message.term()  # never redeliver what can never parse
            return
        try:
            await handler(event)
        except AlreadyProcessed:
            log.info("event_duplicate_ignored", consumer=durable, event_id=event.id)
        except Exception:
            log.exception("event_handler_failed", consumer=durable, event_id=event.id)
            await message.nak(delay=2)
            return
        await message.ack()


Change = Callable[[AsyncClientSession], Awaitable[Any]]
# What a service does with an event's data, inside the transaction that records it handled.
Reaction = Callable[[AsyncClientSession, dict[str, Any]], Awaitable[None]]


async def transact(db: AsyncDatabase[Document], outbox: Outbox, change: Change) -> Any:
    """Run ``change`` in one transaction (retried on write conflicts), then wake the relay."""
    async with db.client.start_session() as session:
        result = await session.with_transaction(change)
    outbox.wake.set()
    return result


async def apply_once(db: AsyncDatabase[Document], outbox: Outbox, consumer: str, event: Event, change: Change) -> None:
    """Run ``change`` and record the event as handled by ``consumer``, in one transaction.

    Raises AlreadyProcessed when this consumer has handled the event before.
    """

    async def claim_then_change(session: AsyncClientSession) -> None:
        await outbox.claim(session, consumer, event.id)
        await change(session)

    try:
        await transact(db, outbox, claim_then_change)
    except DuplicateKeyError as exc:
        raise AlreadyProcessed(event.id) from exc
    # Once committed: e.g. the catalog handling order.cancelled is stock given back.
    log.info("event_handled", consumer=consumer, event_type=event.type, event_id=event.id)


async def start_event_bus(
    app: Any,
    stack: contextlib.AsyncExitStack,
    service: str,
    outbox: Outbox,
    reactions: dict[str, Reaction],
    listeners: dict[str, Handler] | None = None,
) -> EventBus:
    """Connect the service to the bus in the background (stopped with the app), consume
    each event type with its reaction, exactly once per event, and let ``listeners`` hear
    events live (see ``EventBus.listen``)."""
    settings = app.state.settings
    db = app.state.db
    await outbox.ensure_indexes()
    bus = EventBus(
        settings.effective_nats_url,
        service,
        outbox,
        connect_timeout=settings.nats_connect_timeout,
        stream_replicas=settings.nats_stream_replicas,
    )

    def once(reaction: Reaction) -> Handler:
        async def handle(event: Event) -> None:
            await apply_once(db, outbox, service, event, lambda session: reaction(session, event.data))

        return handle

    for event_type, reaction in reactions.items():
        bus.subscribe(event_type, once(reaction))
    for event_type, handler in (listeners or {}).items():
        bus.listen(event_type, handler)
    await bus.start()
    stack.push_async_callback(bus.stop)
    app.state.bus = bus
    return bus
