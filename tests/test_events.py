"""The event bus under failure: duplicates, a NATS outage, a checkout that crashed midway."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections import defaultdict
from datetime import UTC, datetime, timedelta

import nats
import pytest
from bson import ObjectId
from harness import CHECKOUT, assert_problem, eventually, new_product
from pymongo import AsyncMongoClient, MongoClient

from winkit.core.auth import ServiceTokens
from winkit.core.event_contracts import (
    DeliveryStatusChanged,
    Event,
    EventData,
    OrderCreated,
    StockChanged,
    Unreadable,
    read,
    wire,
)
from winkit.core.events import EventBus, _in_rounds
from winkit.core.keys import service_secret
from winkit.core.order_status import OrderStatus
from winkit.core.outbox import PENDING, Outbox, new_event
from winkit.core.store import session_for, unit_of_work


@pytest.fixture
def mongo(mongodb_uri):
    with MongoClient(mongodb_uri) as client:
        yield client


def stock_changed() -> StockChanged:
    return StockChanged(product_id=uuid.uuid4().hex, stock=1, delta=0, reason="adjusted", order_id=None)


def republish(nats_url: str, event: dict) -> None:
    """Send an event again under a new message id, as a redelivery would arrive."""

    async def send() -> None:
        nc = await nats.connect(nats_url)
        body = {k: event[k] for k in ("type", "version", "source", "occurred_at", "data")}
        await nc.jetstream().publish(
            f"winkit.{event['type']}",
            json.dumps({"id": event["_id"], **body}).encode(),
            headers={"Nats-Msg-Id": uuid.uuid4().hex},
        )
        await nc.close()

    asyncio.run(send())


def place(orders, catalog, stack, staff, *, quantity: int = 1, stock: int = 10):
    shopper = stack.customer()
    product = new_product(catalog, staff, stock=stock)
    orders.post("/cart/add", json={"product_id": product["id"], "quantity": quantity}, headers=shopper.headers)
    order = orders.post("/order/create", json=CHECKOUT, headers=shopper.headers)
    assert order.status_code == 201, order.text
    return shopper, product, order.json()["order_id"]


def outbox_event(mongo, event_type: str, order_id: str) -> dict:
    event = mongo["winkit_orders"]["outbox"].find_one({"type": event_type, "data.order_id": order_id})
    assert event is not None
    return event


def test_duplicated_events_change_nothing(orders, delivery, catalog, stack, staff, mongo, nats_server):
    shopper, product, order_id = place(orders, catalog, stack, staff, quantity=3, stock=10)
    status_url = f"/order/{order_id}/status"
    eventually(lambda: delivery.get(status_url, headers=shopper.headers).status_code == 200)
    created = outbox_event(mongo, "order.created", order_id)

    assert orders.post(f"/orders/{order_id}/cancel", headers=shopper.headers).status_code == 200
    eventually(lambda: catalog.get(f"/products/{product['id']}").json()["stock"] == 10)
    cancelled = outbox_event(mongo, "order.cancelled", order_id)
    before = delivery.get(status_url, headers=shopper.headers).json()

    for _ in range(2):
        republish(nats_server.url, created)
        republish(nats_server.url, cancelled)
    # Consumers take each subject in order: once a later order's events are handled,
    # the duplicates before them have been too.
    later_shopper, later_product, later_id = place(orders, catalog, stack, staff, stock=4)
    eventually(lambda: delivery.get(f"/order/{later_id}/status", headers=staff).status_code == 200)
    orders.post(f"/orders/{later_id}/cancel", headers=later_shopper.headers)
    eventually(lambda: catalog.get(f"/products/{later_product['id']}").json()["stock"] == 4)

    assert catalog.get(f"/products/{product['id']}").json()["stock"] == 10
    assert delivery.get(status_url, headers=shopper.headers).json() == before
    assert mongo["winkit_delivery"]["delivery_statuses"].count_documents({"_id": order_id}) == 1


def test_orders_placed_while_nats_is_down_reach_delivery_once_it_returns(
    orders, delivery, catalog, stack, staff, nats_server
):
    nats_server.stop()
    try:
        # The service notices the bus is gone when its connection drops, not at once.
        eventually(lambda: orders.get("/health").json()["checks"]["nats"] == "down")
        placed = [place(orders, catalog, stack, staff) for _ in range(3)]
        for shopper, _, order_id in placed:
            assert_problem(delivery.get(f"/order/{order_id}/status", headers=shopper.headers), 404)
    finally:
        nats_server.start()

    def delivery_record(shopper, order_id: str) -> dict | None:
        response = delivery.get(f"/order/{order_id}/status", headers=shopper.headers)
        return response.json() if response.status_code == 200 else None

    for shopper, _, order_id in placed:
        record = eventually(lambda s=shopper, o=order_id: delivery_record(s, o), timeout=30)
        assert [h["status"] for h in record["history"]] == ["PLACED"]
    eventually(lambda: orders.get("/health").json()["checks"]["nats"] == "ok")


def test_a_reservation_left_by_a_crashed_checkout_is_released(orders, catalog, stack, staff, mongo):
    shopper = stack.customer()
    product = new_product(catalog, staff, stock=5)
    order_id = ObjectId()
    long_ago = datetime.now(UTC) - timedelta(minutes=5)
    # What a checkout that crashed after reserving leaves behind: a PENDING order ...
    mongo["winkit_orders"]["orders"].insert_one(
        {
            "_id": order_id,
            "user_id": shopper.user_id,
            "status": "PENDING",
            "items": [{"product_id": product["id"], "name": product["name"], "price_paise": 5000, "quantity": 2}],
            "subtotal_paise": 10000,
            "delivery_fee_paise": 2500,
            "total_paise": 12500,
            "idempotency_key": f"order:{order_id}",
            "created_at": long_ago,
            "updated_at": long_ago,
        }
    )
    # ... and stock reserved for it in the catalog.
    token = ServiceTokens(service_secret(stack.settings), "orders").issue()
    body = {"order_id": str(order_id), "items": [{"product_id": product["id"], "quantity": 2}]}
    reserved = catalog.post("/internal/reservations", json=body, headers={"Authorization": f"Bearer {token}"})
    assert reserved.status_code == 201, reserved.text
    assert catalog.get(f"/products/{product['id']}").json()["stock"] == 3
    eventually(lambda: catalog.get(f"/products/{product['id']}").json()["stock"] == 5, timeout=30)
    # The recovery releases the stock first and then drops the order: wait for both.
    eventually(lambda: mongo["winkit_orders"]["orders"].find_one({"_id": order_id}) is None)
    assert orders.get("/orders", headers=shopper.headers).json() == []


def test_internal_api_needs_a_service_token(catalog, stack):
    body = {"order_id": "x", "items": [{"product_id": "0123456789abcdef01234567", "quantity": 1}]}
    assert_problem(catalog.post("/internal/reservations", json=body), 401)
    assert_problem(catalog.post("/internal/reservations", json=body, headers=stack.customer().headers), 401)
    forged = ServiceTokens("a-secret-that-is-not-the-services-secret", "orders").issue()
    assert_problem(
        catalog.post("/internal/reservations", json=body, headers={"Authorization": f"Bearer {forged}"}), 401
    )


def test_stock_changes_are_announced_and_published(orders, catalog, stack, staff, mongo):
    shopper = stack.customer()
    product = new_product(catalog, staff, stock=9)
    catalog.patch(f"/products/{product['id']}", json={"stock": 12}, headers=staff)
    orders.post("/cart/add", json={"product_id": product["id"], "quantity": 2}, headers=shopper.headers)
    order_id = orders.post("/order/create", json=CHECKOUT, headers=shopper.headers).json()["order_id"]
    outbox = mongo["winkit_catalog"]["outbox"]

    def announced() -> list[dict]:
        events = list(outbox.find({"type": "stock.changed", "data.product_id": product["id"]}).sort("created_at"))
        return events if len(events) == 2 and all(e["published_at"] for e in events) else []

    adjusted, reserved = (event["data"] for event in eventually(announced))
    assert adjusted == {"product_id": product["id"], "stock": 12, "delta": 3, "reason": "adjusted", "order_id": None}
    assert reserved == {
        "product_id": product["id"],
        "stock": 10,
        "delta": -2,
        "reason": "reserved",
        "order_id": order_id,
    }


def test_events_about_one_thing_keep_their_order_and_others_go_alongside():
    docs = [
        {"_id": "e1", "data": {"order_id": "a"}},
        {"_id": "e2", "data": {"order_id": "b"}},
        {"_id": "e3", "data": {"order_id": "a"}},
        {"_id": "e4", "data": {"product_id": "p"}},
        {"_id": "e5", "data": {"order_id": "a"}},
        {"_id": "e6", "data": {}},
    ]
    rounds = [[doc["_id"] for doc in round_] for round_ in _in_rounds(docs)]
    assert rounds == [["e1", "e2", "e4", "e6"], ["e3"], ["e5"]]


async def test_a_committed_event_reaches_its_handler_without_waiting_for_a_timer(mongodb_uri, nats_server):
    """The relay's sweep and a consumer's pull wait are set to an hour: an event still goes
    from its commit to the handler, because the commit hands it to the relay and a message
    ends a pull at once."""
    client: AsyncMongoClient = AsyncMongoClient(mongodb_uri)
    db = client[f"winkit_relay_{uuid.uuid4().hex[:8]}"]
    outbox = Outbox(db, "test")
    # Left unpublished by a version that did not flag pending events: still published.
    legacy = new_event(stock_changed(), "test")
    del legacy[PENDING]
    await outbox.collection.insert_one(legacy)
    await outbox.ensure_indexes()
    hour = 3600.0
    bus = EventBus(
        nats_server.url,
        f"relay-{uuid.uuid4().hex[:8]}",
        outbox,
        connect_timeout=5,
        relay_interval=hour,
        fetch_timeout=hour,
    )
    handled: defaultdict[str, asyncio.Event] = defaultdict(asyncio.Event)

    async def handle(event: Event, _: EventData) -> None:
        handled[event.id].set()

    async def commit_and_wait() -> None:
        event = new_event(stock_changed(), "test")
        await unit_of_work(db, outbox, lambda: outbox.add(session_for(db), event))
        await asyncio.wait_for(handled[event["_id"]].wait(), 60)

    bus.subscribe("stock.changed", handle)
    await bus.start()
    try:
        await asyncio.wait_for(handled[legacy["_id"]].wait(), 60)
        await commit_and_wait()  # the first may be found by the sweep at start
        await commit_and_wait()  # later ones only by the handover: the next sweep is an hour away
        await commit_and_wait()
    finally:
        await bus.stop()
        await client.drop_database(db.name)
        await client.close()


def test_event_data_goes_out_as_it_always_has():
    """Typed event data keeps the wire format: the fields in their documented order, a
    status as its plain name, the envelope's keys unchanged."""
    changed = DeliveryStatusChanged(
        order_id="o1",
        user_id="u1",
        status=OrderStatus.CONFIRMED,
        previous=OrderStatus.PLACED,
        version=2,
        by="staff",
        at="2026-11-26T08:00:00+00:00",
    )
    body = json.loads(wire(new_event(changed, "delivery")))
    assert list(body) == ["id", "type", "version", "source", "occurred_at", "data"]
    assert (body["type"], body["version"], body["source"]) == ("delivery.status_changed", 1, "delivery")
    assert json.dumps(body["data"]) == (
        '{"order_id": "o1", "user_id": "u1", "status": "CONFIRMED", "previous": "PLACED", "version": 2, '
        '"by": "staff", "at": "2026-11-26T08:00:00+00:00"}'
    )
    created = OrderCreated(
        order_id="o1",
        user_id="u1",
        items=[{"product_id": "p1", "name": "Tea", "price_paise": 4500, "quantity": 2}],
        total_paise=9000,
        address=None,
        created_at="2026-11-26T08:00:00+00:00",
        placed_at=None,
        promised_at=None,
    )
    assert list(json.loads(wire(new_event(created, "orders")))["data"]) == [
        "order_id",
        "user_id",
        "items",
        "total_paise",
        "address",
        "created_at",
        "placed_at",
        "promised_at",
    ]


@pytest.mark.parametrize(
    ("raw", "reason", "why"),
    [
        (b"not json", "malformed", "not an event this service can parse"),
        (b'{"id": "e1"}', "malformed", "not an event this service can parse"),
        (
            b'{"id": "e1", "type": "order.shipped", "version": 1, "source": "x", "occurred_at": "t", "data": {}}',
            "unreadable_version",
            "order.shipped is not an event type this service knows",
        ),
        (
            b'{"id": "e1", "type": "stock.changed", "version": 2, "source": "x", "occurred_at": "t", "data": {}}',
            "unreadable_version",
            "stock.changed version 2 is newer than this service reads (1)",
        ),
        (
            b'{"id": "e1", "type": "product.changed", "version": 1, "source": "x", "occurred_at": "t",'
            b' "data": {"product_id": "p1", "version": "secret-value"}}',
            "invalid_data",
            "version: Input should be a valid integer, unable to parse string as an integer",
        ),
    ],
)
def test_an_event_this_service_cannot_read_says_why_without_its_values(raw, reason, why):
    with pytest.raises(Unreadable) as refused:
        read(raw)
    assert refused.value.reason == reason
    assert refused.value.why == why
    assert (refused.value.event is None) == (reason == "malformed")


def test_a_readable_event_comes_with_its_data_as_its_model():
    changed = stock_changed()
    event, data = read(wire(new_event(changed, "test")))
    assert event.type == "stock.changed"
    assert isinstance(data, StockChanged)
    assert data == changed
