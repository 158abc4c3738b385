"""Delivery status over HTTP: records from events, the lifecycle, who may see and move it."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

import httpx
import pytest
from harness import CHECKOUT, assert_problem, eventually, new_product

FLOW = ["PLACED", "CONFIRMED", "PACKED", "OUT_FOR_DELIVERY", "DELIVERED"]


@pytest.fixture
def placed(orders, catalog, delivery, stack, staff):
    """A fresh order whose delivery record exists; (shopper, order_id)."""
    shopper = stack.customer()
    product = new_product(catalog, staff, stock=50)
    orders.post("/cart/add", json={"product_id": product["id"]}, headers=shopper.headers)
    order_id = orders.post("/order/create", json=CHECKOUT, headers=shopper.headers).json()["order_id"]
    eventually(lambda: delivery.get(f"/order/{order_id}/status", headers=shopper.headers).status_code == 200)
    return shopper, order_id


def test_record_is_created_from_the_event_at_placed(delivery, placed):
    shopper, order_id = placed
    status = delivery.get(f"/order/{order_id}/status", headers=shopper.headers).json()
    assert status["order_id"] == order_id
    assert status["status"] == "PLACED"
    [first] = status["history"]
    assert first["status"] == "PLACED"
    assert first["by"] == "system"
    assert datetime.fromisoformat(first["at"]).utcoffset().total_seconds() == 0
    assert status["allowed_next"] == ["CONFIRMED", "CANCELLED"]


def test_staff_walk_the_order_to_delivered_and_the_shopper_follows(delivery, orders, placed, staff):
    shopper, order_id = placed
    url = f"/order/{order_id}/update-status"
    for expected in FLOW[1:]:
        moved = delivery.post(url, headers=staff)
        assert moved.status_code == 200, moved.text
        assert moved.json()["status"] == expected
        assert moved.json()["history"][-1]["status"] == expected
    status = delivery.get(f"/order/{order_id}/status", headers=shopper.headers).json()
    assert [h["status"] for h in status["history"]] == FLOW
    eventually(lambda: orders.get(f"/orders/{order_id}", headers=shopper.headers).json()["status"] == "DELIVERED")
    refused = assert_problem(delivery.post(url, headers=staff), 409)
    assert refused["allowed_next"] == []
    assert_problem(delivery.post(url, json={"status": "CANCELLED"}, headers=staff), 409)


def test_customers_cannot_move_orders_and_strangers_cannot_see_them(delivery, placed, stack):
    shopper, order_id = placed
    assert_problem(delivery.post(f"/order/{order_id}/update-status", headers=shopper.headers), 403)
    assert_problem(delivery.get(f"/order/{order_id}/status", headers=stack.customer().headers), 404)
    assert_problem(delivery.get(f"/order/{order_id}/status"), 401)
    assert_problem(delivery.get("/order/0123456789abcdef01234567/status", headers=shopper.headers), 404)


def test_skipping_going_back_and_unknown_states_are_refused(delivery, placed, staff):
    _, order_id = placed
    url = f"/order/{order_id}/update-status"
    skip = assert_problem(delivery.post(url, json={"status": "PACKED"}, headers=staff), 409)
    assert skip["allowed_next"] == ["CONFIRMED", "CANCELLED"]
    assert "CONFIRMED" in skip["detail"]
    assert delivery.post(url, json={"status": "CONFIRMED"}, headers=staff).status_code == 200
    assert_problem(delivery.post(url, json={"status": "PLACED"}, headers=staff), 409)
    assert_problem(delivery.post(url, json={"status": "SHIPPED"}, headers=staff), 422)
    assert_problem(delivery.post("/order/0123456789abcdef01234567/update-status", headers=staff), 404)


def test_staff_cancellation_reaches_the_order_and_returns_stock(delivery, orders, catalog, stack, staff):
    shopper = stack.customer()
    product = new_product(catalog, staff, stock=5)
    orders.post("/cart/add", json={"product_id": product["id"], "quantity": 5}, headers=shopper.headers)
    order_id = orders.post("/order/create", json=CHECKOUT, headers=shopper.headers).json()["order_id"]
    url = f"/order/{order_id}/update-status"
    # Wait for the record (a read), then move it once: a write is never retried blindly.
    eventually(lambda: delivery.get(f"/order/{order_id}/status", headers=staff).status_code == 200)
    assert delivery.post(url, headers=staff).json()["status"] == "CONFIRMED"
    assert delivery.post(url, headers=staff).json()["status"] == "PACKED"
    eventually(lambda: orders.get(f"/orders/{order_id}", headers=shopper.headers).json()["status"] == "PACKED")
    assert_problem(orders.post(f"/orders/{order_id}/cancel", headers=shopper.headers), 409)  # too late for shoppers
    cancelled = delivery.post(url, json={"status": "CANCELLED"}, headers=staff)
    assert cancelled.status_code == 200
    assert cancelled.json()["status"] == "CANCELLED"
    eventually(lambda: orders.get(f"/orders/{order_id}", headers=shopper.headers).json()["status"] == "CANCELLED")
    eventually(lambda: catalog.get(f"/products/{product['id']}").json()["stock"] == 5)


def test_concurrent_updates_never_both_win(delivery, placed, stack, staff):
    shopper, order_id = placed
    url = f"{stack.servers['delivery'].url}/order/{order_id}/update-status"
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda _: httpx.post(url, headers=staff, timeout=30), range(8)))
    wins = [r for r in results if r.status_code == 200]
    assert all(r.status_code in (200, 409) for r in results)
    history = [
        h["status"] for h in delivery.get(f"/order/{order_id}/status", headers=shopper.headers).json()["history"]
    ]
    # Every win is exactly one step: no state is skipped or written twice.
    assert history == FLOW[: len(wins) + 1]
