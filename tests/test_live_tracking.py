"""Live tracking and the staff queue: event streams over real sockets, across replicas."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta

import httpx
import pytest
from harness import (
    CHECKOUT,
    LiveServer,
    assert_problem,
    bound_socket,
    eventually,
    new_product,
    next_event,
    server_sent_events,
)

from winkit.delivery.app import create_app as delivery_app

FLOW = ["PLACED", "CONFIRMED", "PACKED", "OUT_FOR_DELIVERY", "DELIVERED"]
# A bound on waiting for the next event, never an expectation of speed.
READ_TIMEOUT = httpx.Timeout(30.0)


def place_order(orders, catalog, delivery, stack, staff, quantity: int = 2):
    """(shopper, order, product), once the delivery record exists."""
    shopper = stack.customer()
    product = new_product(catalog, staff, stock=50, price=120.0)
    orders.post("/cart/add", json={"product_id": product["id"], "quantity": quantity}, headers=shopper.headers)
    created = orders.post("/order/create", json=CHECKOUT, headers=shopper.headers)
    assert created.status_code == 201, created.text
    order = created.json()
    status_url = f"/order/{order['order_id']}/status"
    eventually(lambda: delivery.get(status_url, headers=shopper.headers).status_code == 200)
    return shopper, order, product


@pytest.fixture(scope="module")
def second_replica(stack) -> Iterator[LiveServer]:
    """Another delivery replica on the same database and bus, with quick heartbeats."""
    settings = stack.settings.model_copy(update={"sse_heartbeat_seconds": 0.5})
    server = LiveServer(delivery_app(settings), bound_socket())
    server.start()
    yield server
    server.stop()


def test_the_staff_queue_shows_what_to_pack_and_where_oldest_first(orders, catalog, delivery, stack, staff):
    first_shopper, first, product = place_order(orders, catalog, delivery, stack, staff, quantity=3)
    _, second, _ = place_order(orders, catalog, delivery, stack, staff)
    queue = delivery.get("/deliveries", headers=staff, params={"limit": 500})
    assert queue.status_code == 200, queue.text
    ids = [d["order_id"] for d in queue.json()]
    assert ids.index(first["order_id"]) < ids.index(second["order_id"])
    [shown] = [d for d in queue.json() if d["order_id"] == first["order_id"]]
    assert shown["items"] == [{"product_id": product["id"], "name": product["name"], "quantity": 3}]
    assert shown["address"]["line1"] == "12 MG Road"
    assert shown["address"]["phone"] == "+919876543210"
    assert shown["total"] == first["total"] == 360
    assert shown["currency"] == "INR"
    assert shown["allowed_next"] == ["CONFIRMED", "CANCELLED"]
    assert shown["user_id"] == first_shopper.user_id
    assert datetime.fromisoformat(shown["promised_at"]) == datetime.fromisoformat(first["promised_at"])

    delivery.post(f"/order/{first['order_id']}/update-status", headers=staff)
    confirmed = delivery.get("/deliveries", headers=staff, params={"status": "CONFIRMED", "limit": 500}).json()
    assert first["order_id"] in [d["order_id"] for d in confirmed]
    assert all(d["status"] == "CONFIRMED" for d in confirmed)
    assert_problem(delivery.get("/deliveries", headers=first_shopper.headers), 403)
    assert_problem(delivery.get("/deliveries"), 401)
    assert_problem(delivery.get("/deliveries", headers=staff, params={"status": "LOST"}), 422)


def test_the_shopper_watches_the_order_move_to_delivered(orders, catalog, delivery, stack, staff):
    shopper, order, _ = place_order(orders, catalog, delivery, stack, staff)
    order_id = order["order_id"]
    with (
        httpx.Client(base_url=stack.servers["delivery"].url, timeout=READ_TIMEOUT) as client,
        client.stream("GET", f"/order/{order_id}/events", headers=shopper.headers) as stream,
    ):
        assert stream.status_code == 200
        assert stream.headers["content-type"].startswith("text/event-stream")
        events = server_sent_events(stream)
        name, first = next_event(events)
        assert name == "status"
        assert first["status"] == "PLACED"
        assert first["order_id"] == order_id
        promised = datetime.fromisoformat(first["promised_at"]) - datetime.fromisoformat(order["created_at"])
        assert timedelta(minutes=10) <= promised < timedelta(minutes=11)
        for expected in FLOW[1:]:
            assert delivery.post(f"/order/{order_id}/update-status", headers=staff).status_code == 200
            name, update = next_event(events)
            assert name == "status"
            assert update["status"] == expected
            assert [h["status"] for h in update["history"]] == FLOW[: FLOW.index(expected) + 1]
        assert next_event(events) == ("end", {"order_id": order_id, "status": "DELIVERED"})


def test_only_the_owner_and_staff_may_follow_an_order(orders, catalog, delivery, stack, staff):
    _, order, _ = place_order(orders, catalog, delivery, stack, staff)
    url = f"/order/{order['order_id']}/events"
    assert_problem(delivery.get(url, headers=stack.customer().headers), 404)
    assert_problem(delivery.get(url), 401)
    assert_problem(delivery.get("/order/0123456789abcdef01234567/events", headers=staff), 404)
    with (
        httpx.Client(base_url=stack.servers["delivery"].url, timeout=READ_TIMEOUT) as client,
        client.stream("GET", url, headers=staff) as stream,
    ):
        assert next_event(server_sent_events(stream))[1]["status"] == "PLACED"


def test_a_change_made_on_one_replica_reaches_a_stream_on_another(
    orders, catalog, delivery, stack, staff, second_replica
):
    shopper, order, _ = place_order(orders, catalog, delivery, stack, staff)
    order_id = order["order_id"]
    with (
        httpx.Client(base_url=second_replica.url, timeout=READ_TIMEOUT) as client,
        client.stream("GET", f"/order/{order_id}/events", headers=shopper.headers) as stream,
    ):
        events = server_sent_events(stream)
        assert next_event(events)[1]["status"] == "PLACED"
        # Quiet streams send heartbeats.
        assert next(events) == ("comment", "ping")
        # Moved on the session's own replica; the stream is held by the second one.
        assert delivery.post(f"/order/{order_id}/update-status", headers=staff).status_code == 200
        name, update = next_event(events)
        assert (name, update["status"]) == ("status", "CONFIRMED")


def test_the_staff_board_hears_new_orders_and_changes(orders, catalog, delivery, stack, staff, second_replica):
    with (
        httpx.Client(base_url=second_replica.url, timeout=READ_TIMEOUT) as client,
        client.stream("GET", "/deliveries/events", headers=staff) as stream,
    ):
        events = server_sent_events(stream)
        name, snapshot = next_event(events)
        assert name == "snapshot"
        assert isinstance(snapshot, list)
        _, order, product = place_order(orders, catalog, delivery, stack, staff)
        order_id = order["order_id"]

        def next_about_this_order() -> dict:
            return next(data for name, data in events if name == "delivery" and data["order_id"] == order_id)

        opened = next_about_this_order()
        assert opened["status"] == "PLACED"
        assert opened["items"][0]["product_id"] == product["id"]
        delivery.post(f"/order/{order_id}/update-status", json={"status": "CANCELLED"}, headers=staff)
        cancelled = next_about_this_order()
        assert cancelled["status"] == "CANCELLED"
        assert cancelled["allowed_next"] == []


def test_customers_cannot_open_the_board(delivery, stack):
    assert_problem(delivery.get("/deliveries/events", headers=stack.customer().headers), 403)
