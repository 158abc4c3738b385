"""Cart and checkout over HTTP: real services, real database, real NATS."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta

import httpx
import pytest
from harness import CHECKOUT, assert_problem, eventually, new_product


def test_empty_cart_has_zero_totals(orders, stack):
    shopper = stack.customer()
    cart = orders.get("/cart", headers=shopper.headers).json()
    assert cart == {
        "user_id": shopper.user_id,
        "items": [],
        "subtotal": 0,
        "delivery_fee": 0,
        "total": 0,
        "currency": "INR",
        "free_delivery_from": 199,
    }


def test_add_merges_lines_and_prices_come_from_the_catalog(orders, catalog, stack, staff):
    shopper = stack.customer()
    product = new_product(catalog, staff, stock=10, price=49.5)
    orders.post("/cart/add", json={"product_id": product["id"]}, headers=shopper.headers)
    cart = orders.post("/cart/add", json={"product_id": product["id"], "quantity": 2}, headers=shopper.headers).json()
    [line] = cart["items"]
    assert line == {
        "product_id": product["id"],
        "name": product["name"],
        "price": 49.5,
        "quantity": 3,
        "line_total": 148.5,
        "in_stock": 10,
    }
    # Under ₹199 the default ₹25 delivery fee applies.
    assert cart["subtotal"] == 148.5
    assert cart["delivery_fee"] == 25
    assert cart["total"] == 173.5


def test_delivery_is_free_from_199(orders, catalog, stack, staff):
    shopper = stack.customer()
    product = new_product(catalog, staff, stock=10, price=99.5)
    cart = orders.post("/cart/add", json={"product_id": product["id"], "quantity": 2}, headers=shopper.headers).json()
    assert cart["subtotal"] == 199
    assert cart["delivery_fee"] == 0
    assert cart["total"] == 199


@pytest.mark.parametrize("quantity", [0, -1, 1.5, "2", 21, None])
def test_bad_quantities_are_422(orders, catalog, stack, staff, quantity):
    shopper = stack.customer()
    product = new_product(catalog, staff, stock=5)
    response = orders.post(
        "/cart/add", json={"product_id": product["id"], "quantity": quantity}, headers=shopper.headers
    )
    assert_problem(response, 422)


def test_client_prices_are_refused(orders, catalog, stack, staff):
    shopper = stack.customer()
    product = new_product(catalog, staff, stock=5)
    body = {"product_id": product["id"], "price": 0.01}
    assert_problem(orders.post("/cart/add", json=body, headers=shopper.headers), 422)


def test_unknown_and_deleted_products_are_404_and_malformed_ids_422(orders, catalog, stack, staff):
    shopper = stack.customer()
    gone = new_product(catalog, staff, stock=5)
    catalog.delete(f"/products/{gone['id']}", headers=staff)
    for product_id in ("0123456789abcdef01234567", gone["id"]):
        response = orders.post("/cart/add", json={"product_id": product_id}, headers=shopper.headers)
        assert_problem(response, 404)
    for product_id in ("not-an-id", f"{gone['id']}/", "a/../b", ".", "..", gone["id"].upper(), f" {gone['id']}"):
        response = orders.post("/cart/add", json={"product_id": product_id}, headers=shopper.headers)
        assert assert_problem(response, 422)["errors"][0]["msg"].startswith("Not an id")
    assert orders.get("/cart", headers=shopper.headers).json()["items"] == []


def test_more_than_stock_or_line_limit_is_409(orders, catalog, stack, staff):
    shopper = stack.customer()
    scarce = new_product(catalog, staff, stock=3)
    assert_problem(
        orders.post("/cart/add", json={"product_id": scarce["id"], "quantity": 4}, headers=shopper.headers), 409
    )
    orders.post("/cart/add", json={"product_id": scarce["id"], "quantity": 3}, headers=shopper.headers)
    assert_problem(orders.post("/cart/add", json={"product_id": scarce["id"]}, headers=shopper.headers), 409)
    plenty = new_product(catalog, staff, stock=100)
    orders.post("/cart/add", json={"product_id": plenty["id"], "quantity": 20}, headers=shopper.headers)
    assert_problem(orders.post("/cart/add", json={"product_id": plenty["id"]}, headers=shopper.headers), 409)
    quantities = {i["product_id"]: i["quantity"] for i in orders.get("/cart", headers=shopper.headers).json()["items"]}
    assert quantities == {scarce["id"]: 3, plenty["id"]: 20}


def test_remove_part_or_whole_line(orders, catalog, stack, staff):
    shopper = stack.customer()
    product = new_product(catalog, staff, stock=10)
    orders.post("/cart/add", json={"product_id": product["id"], "quantity": 5}, headers=shopper.headers)
    cart = orders.post(
        "/cart/remove", json={"product_id": product["id"], "quantity": 2}, headers=shopper.headers
    ).json()
    assert cart["items"][0]["quantity"] == 3
    cart = orders.post("/cart/remove", json={"product_id": product["id"]}, headers=shopper.headers).json()
    assert cart["items"] == []
    assert cart["total"] == 0
    assert_problem(orders.post("/cart/remove", json={"product_id": product["id"]}, headers=shopper.headers), 404)


def test_cart_needs_a_token_and_user_id_must_be_the_callers(orders, stack):
    alice, bob = stack.customer(), stack.customer()
    assert_problem(orders.get("/cart"), 401)
    assert orders.get("/cart", params={"user_id": alice.user_id}, headers=alice.headers).status_code == 200
    assert_problem(orders.get("/cart", params={"user_id": bob.user_id}, headers=alice.headers), 403)
    body = {"product_id": "0123456789abcdef01234567", "user_id": bob.user_id}
    assert_problem(orders.post("/cart/add", json=body, headers=alice.headers), 403)
    assert_problem(orders.get("/orders", params={"user_id": bob.user_id}, headers=alice.headers), 403)


def test_checkout_places_the_order_the_cart_showed(orders, catalog, stack, staff):
    shopper = stack.customer()
    apples, milk = (
        new_product(catalog, staff, stock=10, price=120.0),
        new_product(catalog, staff, stock=10, price=27.25),
    )
    orders.post("/cart/add", json={"product_id": apples["id"], "quantity": 1}, headers=shopper.headers)
    cart = orders.post("/cart/add", json={"product_id": milk["id"], "quantity": 2}, headers=shopper.headers).json()
    body = {**CHECKOUT, "note": "Ring twice", "total": 1, "items": []}
    created = orders.post("/order/create", json=body, headers=shopper.headers)
    assert created.status_code == 201, created.text
    order = created.json()
    assert order["status"] == "PLACED"
    assert (order["subtotal"], order["delivery_fee"], order["total"]) == (
        cart["subtotal"],
        cart["delivery_fee"],
        cart["total"],
    )
    shown = [{k: v for k, v in line.items() if k != "in_stock"} for line in cart["items"]]
    assert order["items"] == shown
    assert order["address"]["city"] == "Bengaluru"
    assert order["address"]["phone"] == "+919876543210"
    assert order["address"]["line2"] is None
    placed = datetime.fromisoformat(order["created_at"])
    assert timedelta(minutes=10) <= datetime.fromisoformat(order["promised_at"]) - placed < timedelta(minutes=11)
    assert orders.get("/cart", headers=shopper.headers).json()["items"] == []
    assert catalog.get(f"/products/{milk['id']}").json()["stock"] == 8
    history = orders.get("/orders", headers=shopper.headers).json()
    assert [o["order_id"] for o in history] == [order["order_id"]]
    assert orders.get(f"/orders/{order['order_id']}", headers=shopper.headers).json()["total"] == order["total"]


def test_empty_cart_checkout_is_409(orders, stack):
    assert_problem(orders.post("/order/create", json=CHECKOUT, headers=stack.customer().headers), 409)


def test_an_order_needs_one_delivery_address(orders, catalog, stack, staff):
    shopper = stack.customer()
    product = new_product(catalog, staff, stock=5)
    orders.post("/cart/add", json={"product_id": product["id"]}, headers=shopper.headers)
    saved = {"address_id": "0123456789abcdef01234567"}
    for body in (None, {}, {"note": "no address"}, {**CHECKOUT, **saved}):
        problem = assert_problem(orders.post("/order/create", json=body, headers=shopper.headers), 422)
        assert problem["type"].endswith("/validation")
    problem = assert_problem(orders.post("/order/create", json=saved, headers=shopper.headers), 422)
    assert problem["errors"][0]["loc"] == ["body", "address_id"]
    bad = {"address": {**CHECKOUT["address"], "pincode": "5600", "phone": "12345"}}
    problem = assert_problem(orders.post("/order/create", json=bad, headers=shopper.headers), 422)
    messages = {tuple(e["loc"]): e["msg"] for e in problem["errors"]}
    assert messages[("body", "address", "pincode")] == "Enter a 6-digit Indian pincode, for example 560001."
    assert "10-digit Indian mobile number" in messages[("body", "address", "phone")]
    assert orders.get("/orders", headers=shopper.headers).json() == []
    assert len(orders.get("/cart", headers=shopper.headers).json()["items"]) == 1


def test_checkout_to_a_saved_address(orders, users, catalog, stack, staff):
    shopper, stranger = stack.customer(), stack.customer()
    saved = users.post("/addresses", json={**CHECKOUT["address"], "line1": "7 Park Street"}, headers=shopper.headers)
    assert saved.status_code == 201, saved.text
    product = new_product(catalog, staff, stock=5)
    orders.post("/cart/add", json={"product_id": product["id"]}, headers=stranger.headers)
    body = {"address_id": saved.json()["id"]}
    # Someone else's address is not theirs to deliver to.
    assert_problem(orders.post("/order/create", json=body, headers=stranger.headers), 422)
    orders.post("/cart/add", json={"product_id": product["id"]}, headers=shopper.headers)
    created = orders.post("/order/create", json=body, headers=shopper.headers)
    assert created.status_code == 201, created.text
    assert created.json()["address"]["line1"] == "7 Park Street"


def test_same_idempotency_key_returns_the_same_order(orders, catalog, stack, staff):
    shopper = stack.customer()
    product = new_product(catalog, staff, stock=10)
    orders.post("/cart/add", json={"product_id": product["id"], "quantity": 2}, headers=shopper.headers)
    headers = {**shopper.headers, "Idempotency-Key": uuid.uuid4().hex}
    first = orders.post("/order/create", json=CHECKOUT, headers=headers)
    orders.post("/cart/add", json={"product_id": product["id"], "quantity": 1}, headers=shopper.headers)
    again = orders.post("/order/create", json=CHECKOUT, headers=headers)
    assert first.status_code == 201
    assert again.status_code == 201
    assert again.json()["order_id"] == first.json()["order_id"]
    assert again.headers.get("idempotent-replayed") == "true"
    assert catalog.get(f"/products/{product['id']}").json()["stock"] == 8
    assert len(orders.get("/orders", headers=shopper.headers).json()) == 1
    # The line added after the first checkout is still in the cart.
    assert orders.get("/cart", headers=shopper.headers).json()["items"][0]["quantity"] == 1


def test_idempotency_keys_are_per_user(orders, catalog, stack, staff):
    product = new_product(catalog, staff, stock=10)
    key = uuid.uuid4().hex
    placed = []
    for shopper in (stack.customer(), stack.customer()):
        orders.post("/cart/add", json={"product_id": product["id"]}, headers=shopper.headers)
        placed.append(
            orders.post("/order/create", json=CHECKOUT, headers={**shopper.headers, "Idempotency-Key": key}).json()[
                "order_id"
            ]
        )
    assert placed[0] != placed[1]


def test_checkout_takes_all_lines_or_none(orders, catalog, stack, staff):
    shopper = stack.customer()
    plenty, scarce = new_product(catalog, staff, stock=10), new_product(catalog, staff, stock=2)
    orders.post("/cart/add", json={"product_id": plenty["id"], "quantity": 3}, headers=shopper.headers)
    orders.post("/cart/add", json={"product_id": scarce["id"], "quantity": 2}, headers=shopper.headers)
    catalog.patch(f"/products/{scarce['id']}", json={"stock": 1}, headers=staff)
    problem = assert_problem(orders.post("/order/create", json=CHECKOUT, headers=shopper.headers), 409)
    assert [s["product_id"] for s in problem["short_items"]] == [scarce["id"]]
    assert problem["short_items"][0]["available"] == 1
    assert scarce["name"] in problem["detail"]
    assert catalog.get(f"/products/{plenty['id']}").json()["stock"] == 10
    assert len(orders.get("/cart", headers=shopper.headers).json()["items"]) == 2
    assert orders.get("/orders", headers=shopper.headers).json() == []


def test_twenty_shoppers_racing_for_five_units(orders, catalog, stack, staff):
    product = new_product(catalog, staff, stock=20)
    shoppers = [stack.customer() for _ in range(20)]
    for shopper in shoppers:
        orders.post("/cart/add", json={"product_id": product["id"]}, headers=shopper.headers)
    catalog.patch(f"/products/{product['id']}", json={"stock": 5}, headers=staff)
    url = f"{stack.servers['orders'].url}/order/create"

    def checkout(shopper) -> httpx.Response:
        return httpx.post(url, json=CHECKOUT, headers=shopper.headers, timeout=60)

    with ThreadPoolExecutor(max_workers=20) as pool:
        results = list(pool.map(checkout, shoppers))
    statuses = sorted(r.status_code for r in results)
    assert statuses == [201] * 5 + [409] * 15, [r.text for r in results if r.status_code not in (201, 409)]
    for refused in (r for r in results if r.status_code == 409):
        assert refused.json()["short_items"][0]["product_id"] == product["id"]
    assert catalog.get(f"/products/{product['id']}").json()["stock"] == 0


def test_customer_cancels_and_the_stock_comes_back(orders, delivery, catalog, stack, staff):
    shopper = stack.customer()
    product = new_product(catalog, staff, stock=6)
    orders.post("/cart/add", json={"product_id": product["id"], "quantity": 4}, headers=shopper.headers)
    order = orders.post("/order/create", json=CHECKOUT, headers=shopper.headers).json()
    assert catalog.get(f"/products/{product['id']}").json()["stock"] == 2
    cancelled = orders.post(f"/orders/{order['order_id']}/cancel", headers=shopper.headers)
    assert cancelled.status_code == 200
    assert cancelled.json()["status"] == "CANCELLED"
    eventually(lambda: catalog.get(f"/products/{product['id']}").json()["stock"] == 6)
    status_url = f"/order/{order['order_id']}/status"
    eventually(lambda: delivery.get(status_url, headers=shopper.headers).json().get("status") == "CANCELLED")
    # Cancelling again answers the same and gives nothing back twice.
    again = orders.post(f"/orders/{order['order_id']}/cancel", headers=shopper.headers)
    assert again.status_code == 200
    assert again.json()["status"] == "CANCELLED"
    assert orders.get("/orders", headers=shopper.headers).json()[0]["status"] == "CANCELLED"
    assert catalog.get(f"/products/{product['id']}").json()["stock"] == 6


def test_only_the_owner_sees_or_cancels_an_order(orders, catalog, stack, staff):
    owner, other = stack.customer(), stack.customer()
    product = new_product(catalog, staff, stock=5)
    orders.post("/cart/add", json={"product_id": product["id"]}, headers=owner.headers)
    order_id = orders.post("/order/create", json=CHECKOUT, headers=owner.headers).json()["order_id"]
    assert_problem(orders.get(f"/orders/{order_id}", headers=other.headers), 404)
    assert_problem(orders.post(f"/orders/{order_id}/cancel", headers=other.headers), 404)
    assert_problem(orders.get("/orders/not-an-id", headers=owner.headers), 404)
    assert orders.get("/orders", headers=other.headers).json() == []
