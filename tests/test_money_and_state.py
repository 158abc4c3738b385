"""Money and state under attack: stale prices, cancellations racing the store, double
clicks, id spellings, large carts, and retries after a refusal the shopper can fix."""

from __future__ import annotations

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx
from harness import CHECKOUT, assert_problem, eventually, new_product

from winkit.core.ids import MAX_ORDER_LINES

FLOW = ["PLACED", "CONFIRMED", "PACKED", "OUT_FOR_DELIVERY", "DELIVERED"]


def stock_of(catalog: httpx.Client, product: dict) -> int:
    return catalog.get(f"/products/{product['id']}").json()["stock"]


def test_a_price_raised_after_the_cart_was_read_is_never_charged(orders, catalog, stack, staff):
    shopper = stack.customer()
    product = new_product(catalog, staff, stock=50, price=1.0)
    orders.post("/cart/add", json={"product_id": product["id"], "quantity": 20}, headers=shopper.headers)
    assert orders.get("/cart", headers=shopper.headers).json()["subtotal"] == 20
    catalog.patch(f"/products/{product['id']}", json={"price": 5000}, headers=staff)

    refused = assert_problem(orders.post("/order/create", json=CHECKOUT, headers=shopper.headers), 409)
    assert refused["type"].endswith("/prices-changed")
    [changed] = refused["changed_items"]
    assert (changed["product_id"], changed["shown_price"], changed["price"]) == (product["id"], 1, 5000)
    assert product["name"] in refused["detail"]
    assert orders.get("/orders", headers=shopper.headers).json() == []
    assert stock_of(catalog, product) == 50

    # The cart now shows the new price; ordering what it shows goes through.
    cart = orders.get("/cart", headers=shopper.headers).json()
    assert cart["items"][0]["price"] == 5000
    assert cart["subtotal"] == 100_000
    placed = orders.post("/order/create", json=CHECKOUT, headers=shopper.headers)
    assert placed.status_code == 201, placed.text
    assert placed.json()["total"] == 100_000
    assert stock_of(catalog, product) == 30


def test_the_cart_always_shows_current_names_prices_and_stock(orders, catalog, stack, staff):
    shopper = stack.customer()
    product = new_product(catalog, staff, stock=9, price=40.0)
    orders.post("/cart/add", json={"product_id": product["id"], "quantity": 2}, headers=shopper.headers)
    catalog.patch(f"/products/{product['id']}", json={"price": 35.5, "name": "Renamed", "stock": 3}, headers=staff)
    [line] = orders.get("/cart", headers=shopper.headers).json()["items"]
    assert (line["name"], line["price"], line["line_total"], line["in_stock"]) == ("Renamed", 35.5, 71, 3)
    catalog.delete(f"/products/{product['id']}", headers=staff)
    [line] = orders.get("/cart", headers=shopper.headers).json()["items"]
    assert line["in_stock"] == 0  # no longer sold: checkout will say so


def test_a_double_click_places_one_order(orders, catalog, stack, staff):
    shopper = stack.customer()
    product = new_product(catalog, staff, stock=10)
    orders.post("/cart/add", json={"product_id": product["id"]}, headers=shopper.headers)
    url = f"{stack.servers['orders'].url}/order/create"
    start = threading.Barrier(5)

    def click(_: int) -> httpx.Response:
        start.wait()
        return httpx.post(url, json=CHECKOUT, headers=shopper.headers, timeout=60)

    with ThreadPoolExecutor(max_workers=5) as pool:
        answers = list(pool.map(click, range(5)))
    assert sorted(a.status_code for a in answers) == [201, 409, 409, 409, 409], [a.text for a in answers]
    assert len(orders.get("/orders", headers=shopper.headers).json()) == 1
    assert stock_of(catalog, product) == 9


def test_a_refused_checkout_leaves_nothing_so_the_same_key_works_once_the_cart_is_fixed(orders, catalog, stack, staff):
    shopper = stack.customer()
    product = new_product(catalog, staff, stock=4)
    orders.post("/cart/add", json={"product_id": product["id"], "quantity": 3}, headers=shopper.headers)
    catalog.patch(f"/products/{product['id']}", json={"stock": 2}, headers=staff)
    headers = {**shopper.headers, "Idempotency-Key": uuid.uuid4().hex}
    refused = assert_problem(orders.post("/order/create", json=CHECKOUT, headers=headers), 409)
    assert refused["type"].endswith("/out-of-stock")
    assert refused["short_items"][0]["available"] == 2
    orders.post("/cart/remove", json={"product_id": product["id"], "quantity": 1}, headers=shopper.headers)
    placed = orders.post("/order/create", json=CHECKOUT, headers=headers)
    assert placed.status_code == 201, placed.text
    assert "idempotent-replayed" not in placed.headers, placed.text
    again = orders.post("/order/create", json=CHECKOUT, headers=headers)
    assert again.json()["order_id"] == placed.json()["order_id"]
    assert again.headers["idempotent-replayed"] == "true"


def test_a_cart_holds_a_bounded_number_of_lines(orders, catalog, stack, staff):
    shopper = stack.customer()
    products = [new_product(catalog, staff, stock=5, price=1.0) for _ in range(MAX_ORDER_LINES + 1)]
    for product in products[:MAX_ORDER_LINES]:
        added = orders.post("/cart/add", json={"product_id": product["id"]}, headers=shopper.headers)
        assert added.status_code == 200, added.text
    refused = assert_problem(
        orders.post("/cart/add", json={"product_id": products[-1]["id"]}, headers=shopper.headers), 409
    )
    assert str(MAX_ORDER_LINES) in refused["detail"]
    # More of a product already in the cart is not a new line.
    assert orders.post("/cart/add", json={"product_id": products[0]["id"]}, headers=shopper.headers).status_code == 200
    placed = orders.post("/order/create", json=CHECKOUT, headers=shopper.headers)
    assert placed.status_code == 201, placed.text
    assert len(placed.json()["items"]) == MAX_ORDER_LINES, placed.text


def test_cancel_races_the_store_and_never_both_win(orders, delivery, catalog, stack, staff):
    """50 rounds of the shopper cancelling while staff move the order on (CONFIRMED ->
    PACKED, the last step a shopper may cancel before): in no round does an order end
    both cancelled and delivered, and stock comes back exactly when it is cancelled."""
    rounds = 50
    shopper = stack.customer()
    placed = []
    for _ in range(rounds):
        product = new_product(catalog, staff, stock=5)
        orders.post("/cart/add", json={"product_id": product["id"]}, headers=shopper.headers)
        order_id = orders.post("/order/create", json=CHECKOUT, headers=shopper.headers).json()["order_id"]
        placed.append((order_id, product))
    for order_id, _ in placed:
        status = f"/order/{order_id}/status"
        eventually(lambda status=status: delivery.get(status, headers=staff).status_code == 200)
        confirmed = delivery.post(f"/order/{order_id}/update-status", json={"status": "CONFIRMED"}, headers=staff)
        assert confirmed.status_code == 200, confirmed.text

    orders_url, delivery_url = stack.servers["orders"].url, stack.servers["delivery"].url
    outcomes = {}
    with ThreadPoolExecutor(max_workers=2) as pool:
        for order_id, _ in placed:
            start = threading.Barrier(2)

            def cancel(order_id: str = order_id, start: threading.Barrier = start) -> int:
                start.wait()
                return httpx.post(
                    f"{orders_url}/orders/{order_id}/cancel", headers=shopper.headers, timeout=60
                ).status_code

            def advance(order_id: str = order_id, start: threading.Barrier = start) -> int:
                start.wait()
                url = f"{delivery_url}/order/{order_id}/update-status"
                return httpx.post(url, json={"status": "PACKED"}, headers=staff, timeout=60).status_code

            cancelled, advanced = pool.submit(cancel), pool.submit(advance)
            outcomes[order_id] = (cancelled.result(), advanced.result())
    assert all(sorted(o) == [200, 409] for o in outcomes.values()), outcomes

    for order_id, (cancel_status, _) in outcomes.items():
        if cancel_status == 409:  # the store won: the parcel goes out and arrives
            for _ in FLOW[3:]:
                assert delivery.post(f"/order/{order_id}/update-status", headers=staff).status_code == 200

    def settled() -> bool:
        for order_id, product in placed:
            expected = "CANCELLED" if outcomes[order_id][0] == 200 else "DELIVERED"
            shown = orders.get(f"/orders/{order_id}", headers=shopper.headers).json()["status"]
            tracked = delivery.get(f"/order/{order_id}/status", headers=shopper.headers).json()
            history = [h["status"] for h in tracked["history"]]
            if shown != expected or tracked["status"] != expected:
                return False
            assert not ("CANCELLED" in history and "DELIVERED" in history), history
            if stock_of(catalog, product) != (5 if expected == "CANCELLED" else 4):
                return False
        return True

    eventually(settled, timeout=60)
    cancelled = sum(1 for cancel_status, _ in outcomes.values() if cancel_status == 200)
    print(f"{cancelled} of {rounds} rounds cancelled, {rounds - cancelled} delivered")
