"""Poison messages: an event a consumer cannot handle is not retried forever. After a
bounded number of deliveries (at once, if it cannot even be read) it moves to the
dead-letter stream as it came, a metric counts it and a log line says why; nothing is lost
and the consumer goes on with the rest. Against a real nats-server and database."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import nats
import pytest
from conftest import Nats
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError
from prometheus_client import CollectorRegistry
from pymongo import AsyncMongoClient

from winkit.core.event_contracts import Event, EventData, StockChanged
from winkit.core.events import DEAD_LETTER_PREFIX, DEAD_LETTER_STREAM, STREAM, SUBJECT_PREFIX, EventBus
from winkit.core.outbox import Outbox, new_event
from winkit.core.store import session_for, unit_of_work

MAX_DELIVERIES = 3
T = TypeVar("T")


@pytest.fixture
def private_nats(tmp_path: Path) -> Iterator[Nats]:
    """A nats-server of each test's own: these tests publish poison no other test should
    hear, and each consumer starts from an empty stream."""
    server = Nats(tmp_path)
    server.start()
    yield server
    server.stop()


class Consumer:
    """An EventBus consuming stock.changed with a handler that fails for chosen events."""

    def __init__(self, bus: EventBus, registry: CollectorRegistry, durable: str) -> None:
        self.bus, self.registry, self.durable = bus, registry, durable
        self.poisoned: set[str] = set()
        self.calls: dict[str, int] = {}
        self.handled: defaultdict[str, asyncio.Event] = defaultdict(asyncio.Event)

    async def handle(self, event: Event, _: EventData) -> None:
        self.calls[event.id] = self.calls.get(event.id, 0) + 1
        if event.id in self.poisoned:
            raise RuntimeError("the shelf this product is on is on fire")
        self.handled[event.id].set()

    def dead_lettered(self, reason: str) -> float:
        labels = {"consumer": self.durable, "type": "stock.changed", "reason": reason}
        return self.registry.get_sample_value("winkit_events_dead_lettered_total", labels) or 0.0


@pytest.fixture
async def consumer(mongodb_uri: str, private_nats: Nats) -> AsyncIterator[tuple[Consumer, Any]]:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongodb_uri)
    db = client[f"winkit_dead_{uuid.uuid4().hex[:8]}"]
    outbox = Outbox(db, "test")
    await outbox.ensure_indexes()
    service = f"dead-{uuid.uuid4().hex[:8]}"
    registry = CollectorRegistry()
    bus = EventBus(
        private_nats.url, service, outbox, connect_timeout=5, max_deliveries=MAX_DELIVERIES, registry=registry
    )
    subject = Consumer(bus, registry, f"{service}-stock-changed")
    bus.subscribe("stock.changed", subject.handle)
    await bus.start()
    await consumer_ready(private_nats.url, subject.durable)
    try:
        yield subject, (db, outbox)
    finally:
        await bus.stop()
        await client.drop_database(db.name)
        await client.close()


async def until(nats_url: str, probe: Callable[[JetStreamContext], Awaitable[T | None]]) -> T:
    """What ``probe`` finds in JetStream, once it finds something (None: not yet)."""
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        async with asyncio.timeout(60):
            while True:  # JetStream has no notification for these: ask until it answers
                found = await probe(js)
                if found is not None:
                    return found
                await asyncio.sleep(0.05)
    finally:
        await nc.close()


async def consumer_ready(nats_url: str, durable: str) -> None:
    """Until the bus has made its streams and its durable consumer (it connects in the
    background), so that what a test publishes has somewhere to go."""

    async def made(js: JetStreamContext) -> bool | None:
        try:
            await js.consumer_info(STREAM, durable)
            await js.stream_info(DEAD_LETTER_STREAM)
        except NotFoundError:
            return None
        return True

    await until(nats_url, made)


async def dead_letter(nats_url: str, durable: str) -> Any:
    """The latest message in the dead-letter stream for this consumer, once there is one."""

    async def latest(js: JetStreamContext) -> Any:
        try:
            return await js.get_last_msg(DEAD_LETTER_STREAM, DEAD_LETTER_PREFIX + durable)
        except NotFoundError:
            return None

    return await until(nats_url, latest)


async def settled(nats_url: str, durable: str) -> None:
    """Until the consumer has nothing left to deliver or waiting for an ack."""

    async def idle(js: JetStreamContext) -> bool | None:
        info = await js.consumer_info(STREAM, durable)
        return True if info.num_pending == 0 and info.num_ack_pending == 0 else None

    await until(nats_url, idle)


async def commit(db_and_outbox: Any, data: StockChanged) -> dict[str, Any]:
    db, outbox = db_and_outbox
    event = new_event(data, "test")
    await unit_of_work(db, outbox, lambda: outbox.add(session_for(db), event))
    return event


async def test_an_event_whose_handler_keeps_failing_is_dead_lettered_after_its_last_delivery(
    consumer: tuple[Consumer, Any], private_nats: Nats
) -> None:
    subject, db_and_outbox = consumer
    poison_id = uuid.uuid4().hex
    subject.poisoned.add(poison_id)
    data = StockChanged(product_id=uuid.uuid4().hex, stock=0, delta=-1, reason="adjusted", order_id=None)
    db, outbox = db_and_outbox
    poison = new_event(data, "test")
    poison["_id"] = poison_id
    await unit_of_work(db, outbox, lambda: outbox.add(session_for(db), poison))

    kept = await dead_letter(private_nats.url, subject.durable)
    # As it came: the event itself, byte for byte, and where and why it stopped.
    assert Event.parse(kept.data).id == poison_id
    assert json.loads(kept.data)["data"] == data.model_dump()
    assert kept.headers["Winkit-Subject"] == SUBJECT_PREFIX + "stock.changed"
    assert kept.headers["Winkit-Consumer"] == subject.durable
    assert kept.headers["Winkit-Reason"] == "handler_failed"
    assert kept.headers["Winkit-Deliveries"] == str(MAX_DELIVERIES)
    await settled(private_nats.url, subject.durable)
    # Tried exactly so often, then never again; counted once.
    assert subject.calls[poison_id] == MAX_DELIVERIES
    assert subject.dead_lettered("handler_failed") == 1
    # And the consumer goes on: the next event is handled.
    healthy = await commit(
        db_and_outbox, StockChanged(product_id=uuid.uuid4().hex, stock=3, delta=1, reason="adjusted", order_id=None)
    )
    await asyncio.wait_for(subject.handled[healthy["_id"]].wait(), 60)
    assert not subject.handled[poison_id].is_set()


async def publish_raw(nats_url: str, body: bytes) -> None:
    nc = await nats.connect(nats_url)
    try:
        await nc.jetstream().publish(SUBJECT_PREFIX + "stock.changed", body, headers={"Nats-Msg-Id": uuid.uuid4().hex})
    finally:
        await nc.close()


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"{not json", "malformed"),
        (b'{"id": "x1", "type": "stock.changed"}', "malformed"),
        (
            json.dumps(
                {
                    "id": uuid.uuid4().hex,
                    "type": "stock.changed",
                    "version": 2,
                    "source": "a-newer-catalog",
                    "occurred_at": "2026-11-26T00:00:00+00:00",
                    "data": {"product_id": "p", "stock": 1, "delta": 1, "reserved": 4},
                }
            ).encode(),
            "unreadable_version",
        ),
        (
            json.dumps(
                {
                    "id": uuid.uuid4().hex,
                    "type": "stock.changed",
                    "version": 1,
                    "source": "a-broken-catalog",
                    "occurred_at": "2026-11-26T00:00:00+00:00",
                    "data": {"product_id": "p", "stock": "plenty", "delta": 1, "reason": "adjusted"},
                }
            ).encode(),
            "invalid_data",
        ),
    ],
    ids=["not-json", "missing-fields", "newer-version", "data-not-as-its-type-says"],
)
async def test_an_event_this_service_cannot_read_is_dead_lettered_at_once_and_never_handled(
    body: bytes, reason: str, consumer: tuple[Consumer, Any], private_nats: Nats
) -> None:
    subject, _ = consumer
    await publish_raw(private_nats.url, body)
    kept = await dead_letter(private_nats.url, subject.durable)
    assert kept.data == body
    assert kept.headers["Winkit-Reason"] == reason
    assert kept.headers["Winkit-Deliveries"] == "1"
    await settled(private_nats.url, subject.durable)
    assert subject.dead_lettered(reason) == 1
    assert subject.calls == {}
