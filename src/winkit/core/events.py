"""The event bus: NATS JetStream between services, the outbox relay, durable idempotent
consumers and their dead letters.

The relay publishes what each commit hands it (``store.unit_of_work``) at once with
``Nats-Msg-Id`` = event id (JetStream drops duplicates within its window), marks published
events in batches and sweeps the outbox for events no commit in this process handed over
(another replica's, or left by a crash). Consumers are durable pull consumers; each event is
handled with ``store.apply_once`` and acked only after that commits. An event a consumer
cannot handle goes to the dead-letter stream after its last delivery (docs/events.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Generic, TypeVar
from urllib.parse import urlsplit

import nats
import structlog
from nats.aio.client import Client as NatsClient
from nats.errors import Error as NatsError
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, StreamConfig
from nats.js.errors import NotFoundError
from prometheus_client import CollectorRegistry
from prometheus_client import Counter as MetricCounter
from pymongo.errors import PyMongoError

from winkit.core import tracing
from winkit.core.database import Document
from winkit.core.event_contracts import Event, EventData, Unreadable, read, wire
from winkit.core.outbox import RELAY_PAGE, TRACE_CONTEXT, Inbox, Outbox
from winkit.core.store import AlreadyProcessed, apply_once

log = structlog.get_logger("winkit.events")

D = TypeVar("D", bound=EventData)

STREAM = "WINKIT"
# Events a consumer gave up on, kept for a person to look at (and replay): one subject per
# consumer, winkit-dead.<durable>. Kept longer than the events themselves.
DEAD_LETTER_STREAM = "WINKIT_DEAD"
DEAD_LETTER_PREFIX = "winkit-dead."
DEAD_LETTER_MAX_AGE = 30 * 86_400
# Deliveries of one event to one consumer before it is dead-lettered: a handler that fails
# this often (naks two seconds apart) fails for a reason retrying will not fix.
MAX_DELIVERIES = 10
# JetStream's own limit is a little higher: if writing to the dead-letter stream fails at
# the last delivery, the event is tried (and dead-lettered) again a few times.
DEAD_LETTER_RETRIES = 5
# Seconds the bus may take to stop (tasks, then the connection) when the service stops.
STOP_TIMEOUT = 3.0
# Seconds between the relay's sweeps of the outbox (each also marks what was published).
RELAY_INTERVAL = 1.0
# Seconds a consumer's pull request waits for a message; one that arrives ends it at once.
FETCH_TIMEOUT = 1.0
# Events one consumer handles at once (about different things; see _about).
CONSUMER_CONCURRENCY = 16
# Seconds JetStream may take to acknowledge a publish.
PUBLISH_TIMEOUT = 5.0
# Seconds the relay waits after a failure before it tries again.
RELAY_RETRY = 1.0
SUBJECT_PREFIX = "winkit."


def _deliveries(message: Any) -> int:
    """How many times JetStream has delivered this message to this consumer (1 the first)."""
    return int(message.metadata.num_delivered)


def _about(data: dict[str, Any], event_id: str) -> str:
    """What an event is about (a product, else an order): events about one thing are
    published, and handled, in order; events about different things need not wait."""
    return str(data.get("product_id") or data.get("order_id") or event_id)


def _in_rounds(docs: list[Document]) -> list[list[Document]]:
    """``docs`` in rounds holding at most one event about each thing, the k-th event about
    a thing in round k: a round may go out at once, a thing's events keep their order."""
    rounds: list[list[Document]] = []
    seen: Counter[str] = Counter()
    for doc in docs:
        about = _about(doc["data"], doc["_id"])
        if seen[about] == len(rounds):
            rounds.append([])
        rounds[seen[about]].append(doc)
        seen[about] += 1
    return rounds


def _where(url: str) -> str:
    """Host and port of a URL, for logs: a NATS URL may carry credentials."""
    parts = urlsplit(url)
    return f"{parts.hostname}:{parts.port}" if parts.port else str(parts.hostname)


# What a service does with an event, durable or live: called with the event's data as its
# type's model (checked once, before it is called).
Handler = Callable[[D], Awaitable[object]]
# A durable consumer as the bus runs it: the envelope too, for its id.
Consumer = Callable[[Event, EventData], Awaitable[None]]


class EventBus:
    """One NATS connection per service: stream set-up, the outbox relay and consumers.

    Start-up never waits for NATS: a bounded first connect, then retries in the background
    while the service keeps serving HTTP; the outbox holds events until the bus is back.
    """

    def __init__(
        self,
        url: str,
        service: str,
        outbox: Outbox,
        *,
        connect_timeout: float,
        stream_replicas: int = 1,
        relay_interval: float = RELAY_INTERVAL,
        fetch_timeout: float = FETCH_TIMEOUT,
        max_deliveries: int = MAX_DELIVERIES,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self._url = url
        self._max_deliveries = max_deliveries
        self._dead_lettered = MetricCounter(
            "winkit_events_dead_lettered_total",
            "Events a consumer gave up on, moved to the dead-letter stream, by consumer and reason.",
            ["consumer", "type", "reason"],
            registry=registry if registry is not None else CollectorRegistry(),
        )
        self._relay_interval = relay_interval
        self._fetch_timeout = fetch_timeout
        self._stream_replicas = stream_replicas
        self._service = service
        self._outbox = outbox
        self._connect_timeout = connect_timeout
        self._subscriptions: list[tuple[str, str, Consumer]] = []
        self._listeners: list[tuple[str, Handler[Any]]] = []
        self._nc: NatsClient | None = None
        self._js: JetStreamContext | None = None
        self._tasks: list[asyncio.Task[None]] = []
        # Consumers' handlings of single events, running.
        self._handling: set[asyncio.Task[None]] = set()
        self._stopping = False

    def subscribe(self, event_type: str, handler: Consumer) -> None:
        durable = f"{self._service}-{event_type.replace('.', '-')}"
        self._subscriptions.append((event_type, durable, handler))

    def listen(self, event_type: str, handler: Handler[Any]) -> None:
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
        tasks = [*self._tasks, *self._handling]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=STOP_TIMEOUT)
        self._tasks.clear()
        # Marked now, so the next start does not publish them again.
        with contextlib.suppress(PyMongoError, TimeoutError):
            await asyncio.wait_for(self._outbox.mark_published(), STOP_TIMEOUT)
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
        for event_type, durable, consumer in self._subscriptions:
            self._tasks.append(asyncio.create_task(self._consume(event_type, durable, consumer)))
        await self._relay()

    def _listener(self, event_type: str, handler: Handler[Any]) -> Callable[[Any], Awaitable[None]]:
        async def hear(message: Any) -> None:
            with tracing.consuming(message.subject, message.headers):
                try:
                    _, data = read(message.data)
                except Unreadable as refused:
                    # Live views re-read the truth later; nothing to keep, only to say.
                    event_id = refused.event.id if refused.event is not None else None
                    log.warning("event_unreadable", event_type=event_type, event_id=event_id, why=refused.why)
                    return
                try:
                    await handler(data)
                except Exception as exc:
                    log.exception("event_listener_failed", event_type=event_type)
                    tracing.failed(exc)

        return hear

    async def _ensure_stream(self) -> None:
        """Create the streams (events, dead letters), or raise their replica count to the
        configured one."""
        assert self._js is not None
        config = StreamConfig(
            name=STREAM,
            subjects=[f"{SUBJECT_PREFIX}>"],
            max_age=14 * 86_400,
            duplicate_window=300,
            num_replicas=self._stream_replicas,
        )
        dead_letters = StreamConfig(
            name=DEAD_LETTER_STREAM,
            subjects=[f"{DEAD_LETTER_PREFIX}>"],
            max_age=DEAD_LETTER_MAX_AGE,
            duplicate_window=300,
            num_replicas=self._stream_replicas,
        )
        for wanted in (config, dead_letters):
            assert wanted.name is not None
            try:
                info = await self._js.stream_info(wanted.name)
            except NotFoundError:
                await self._js.add_stream(wanted)
                continue
            if (info.config.num_replicas or 1) < self._stream_replicas:
                await self._js.update_stream(wanted)

    async def _relay(self) -> None:
        """Publish what this process commits as soon as it commits. Every relay interval,
        also mark what was published and sweep the outbox for events older than two
        intervals (younger ones are their own replica's to publish and mark). At start and
        after a failure the sweep takes every pending event, oldest first, and nothing is
        published from memory until it has: events about one thing never overtake each other."""
        loop = asyncio.get_running_loop()
        sweep_at, catching_up = loop.time(), True
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._outbox.wake.wait(), max(0.0, sweep_at - loop.time()))
            self._outbox.wake.clear()
            fresh, dropped = self._outbox.take_committed()
            catching_up = catching_up or dropped
            try:
                if loop.time() >= sweep_at:
                    await self._sweep(everything=catching_up)
                    if catching_up:
                        fresh = []  # committed before the sweep read the outbox: it published them
                    catching_up = False
                    sweep_at = loop.time() + self._relay_interval
                if not catching_up:
                    await self._publish(fresh)
                if self._outbox.unmarked >= RELAY_PAGE:
                    await self._outbox.mark_published()
            except (NatsError, TimeoutError, PyMongoError) as exc:
                log.warning("outbox_relay_paused", error=str(exc) or type(exc).__name__)
                catching_up = True
                sweep_at = loop.time() + RELAY_RETRY

    async def _sweep(self, *, everything: bool) -> None:
        # Marked first, so the sweep does not see what was published as pending.
        await self._outbox.mark_published()
        before = None if everything else datetime.now(UTC) - 2 * timedelta(seconds=self._relay_interval)
        while page := await self._outbox.pending(before=before):
            await self._publish(page)
            await self._outbox.mark_published()
            if len(page) < RELAY_PAGE:
                return

    async def _publish(self, docs: list[Document]) -> None:
        """Publish concurrently, except that an event waits for the acknowledgement of the
        one before it about the same thing; a failure is raised once the others are in."""
        for round_ in _in_rounds(docs):
            results = await asyncio.gather(*(self._send(doc) for doc in round_), return_exceptions=True)
            published = zip(round_, results, strict=True)
            self._outbox.published(doc["_id"] for doc, result in published if not isinstance(result, BaseException))
            failure = next((r for r in results if isinstance(r, BaseException)), None)
            if failure is not None:
                raise failure

    async def _send(self, doc: Document) -> None:
        """Publish one event and wait for JetStream's acknowledgement; the message carries
        the trace context the event was written in."""
        assert self._js is not None
        subject = SUBJECT_PREFIX + doc["type"]
        with tracing.sending(subject, doc["_id"], doc.get(TRACE_CONTEXT)) as trace_headers:
            headers = {"Nats-Msg-Id": doc["_id"], **trace_headers}
            ack = await self._js.publish_async(subject, wire(doc), headers=headers)
            await asyncio.wait_for(ack, PUBLISH_TIMEOUT)

    async def _consume(self, event_type: str, durable: str, handler: Consumer) -> None:
        assert self._js is not None
        config = ConsumerConfig(
            durable_name=durable,
            ack_policy=AckPolicy.EXPLICIT,
            deliver_policy=DeliverPolicy.ALL,
            ack_wait=30,
            max_ack_pending=1000,
            max_deliver=self._max_deliveries + DEAD_LETTER_RETRIES,
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
        slots = asyncio.Semaphore(CONSUMER_CONCURRENCY)
        # The latest handling of each thing events are about: the next one waits for it.
        latest: dict[str, asyncio.Task[None]] = {}
        while not self._stopping:
            try:
                messages = await sub.fetch(batch=CONSUMER_CONCURRENCY, timeout=self._fetch_timeout)
            except (NatsTimeoutError, TimeoutError):
                continue
            except NatsError as exc:
                log.warning("consumer_fetch_failed", consumer=durable, error=str(exc))
                await asyncio.sleep(1)
                continue
            for message in messages:
                try:
                    event, data = read(message.data)
                except Unreadable as refused:
                    # Never redelivered: what cannot be read now never will.
                    await self._dead_letter(durable, message, refused.event, refused.reason, refused.why)
                    continue
                await slots.acquire()
                about = _about(event.data, event.id)
                handling = self._handle_in_turn(latest.get(about), durable, handler, event, data, message)
                task = asyncio.create_task(handling)
                latest[about] = task
                self._handling.add(task)
                task.add_done_callback(functools.partial(self._handled, latest, about, slots))

    def _handled(
        self, latest: dict[str, asyncio.Task[None]], about: str, slots: asyncio.Semaphore, task: asyncio.Task[None]
    ) -> None:
        self._handling.discard(task)
        if latest.get(about) is task:
            del latest[about]
        slots.release()

    async def _handle_in_turn(
        self,
        before: asyncio.Task[None] | None,
        durable: str,
        handler: Consumer,
        event: Event,
        data: EventData,
        message: Any,
    ) -> None:
        if before is not None:
            await asyncio.wait([before])  # its turn, not its outcome: a failed one is redelivered
        with tracing.consuming(message.subject, message.headers, durable):
            try:
                await handler(event, data)
            except AlreadyProcessed:
                log.info("event_duplicate_ignored", consumer=durable, event_id=event.id)
            except Exception as exc:
                log.exception("event_handler_failed", consumer=durable, event_id=event.id)
                tracing.failed(exc)
                if _deliveries(message) >= self._max_deliveries:
                    why = f"{type(exc).__name__}: {exc}"
                    await self._dead_letter(durable, message, event, "handler_failed", why)
                else:
                    await self._settle(durable, message.nak(delay=2))
                return
            await self._settle(durable, message.ack())

    async def _dead_letter(self, durable: str, message: Any, event: Event | None, reason: str, why: str) -> None:
        """Move a message this consumer gives up on to the dead-letter stream, as it came
        (its headers too) plus why, then stop JetStream delivering it here; counted and
        logged. If the dead-letter stream cannot take it, it is redelivered and tried again."""
        assert self._js is not None
        event_type = event.type if event is not None else message.subject.removeprefix(SUBJECT_PREFIX)
        headers = {
            **(message.headers or {}),
            # One copy per event and consumer, whichever delivery dead-letters it.
            "Nats-Msg-Id": f"{event.id if event is not None else message.metadata.sequence.stream}.{durable}",
            "Winkit-Subject": message.subject,
            "Winkit-Consumer": durable,
            "Winkit-Reason": reason,
            "Winkit-Deliveries": str(_deliveries(message)),
        }
        try:
            ack = await self._js.publish_async(DEAD_LETTER_PREFIX + durable, message.data, headers=headers)
            await asyncio.wait_for(ack, PUBLISH_TIMEOUT)
        except (NatsError, TimeoutError) as exc:
            log.warning("event_dead_letter_failed", consumer=durable, error=str(exc))
            await self._settle(durable, message.nak(delay=2))
            return
        await self._settle(durable, message.term())
        self._dead_lettered.labels(durable, event_type, reason).inc()
        log.error(
            "event_dead_lettered",
            consumer=durable,
            event_id=event.id if event is not None else None,
            event_type=event_type,
            reason=reason,
            why=why,
            deliveries=_deliveries(message),
            stream=DEAD_LETTER_STREAM,
        )

    async def _settle(self, durable: str, reply: Awaitable[None]) -> None:
        """Ack, nak or term; if the connection is gone, JetStream redelivers after ack_wait."""
        try:
            await reply
        except NatsError as exc:
            log.warning("event_settle_failed", consumer=durable, error=str(exc))


@dataclass(frozen=True, slots=True)
class On(Generic[D]):
    """What a service does with one event type: ``handler`` is called with the event's data
    as its model. As a reaction (a durable consumer) it runs inside the unit of work that
    records the event handled, which the handler's own units of work join; as a listener,
    in every replica as events are published (``EventBus.listen``)."""

    event: type[D]
    handler: Handler[D]


async def start_event_bus(
    app: Any,
    stack: contextlib.AsyncExitStack,
    outbox: Outbox,
    reactions: Iterable[On[Any]],
    listeners: Iterable[On[Any]] = (),
) -> EventBus:
    """Connect the service to the bus in the background (stopped with the app), react to
    each event type exactly once per event, and let ``listeners`` hear events live."""
    settings = app.state.settings
    db = app.state.db
    service = outbox.source
    await outbox.ensure_indexes()
    bus = EventBus(
        settings.effective_nats_url,
        service,
        outbox,
        connect_timeout=settings.nats_connect_timeout,
        stream_replicas=settings.nats_stream_replicas,
        registry=app.state.metrics.registry,
    )

    inbox = Inbox(db)

    def once(reaction: On[Any]) -> Consumer:
        async def handle(event: Event, data: EventData) -> None:
            await apply_once(db, outbox, inbox, service, event, lambda: reaction.handler(data))

        return handle

    for reaction in reactions:
        bus.subscribe(reaction.event.TYPE, once(reaction))
    for listener in listeners:
        bus.listen(listener.event.TYPE, listener.handler)
    await bus.start()
    stack.push_async_callback(bus.stop)
    app.state.bus = bus
    return bus
