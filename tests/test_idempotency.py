"""Retrying any write with the same Idempotency-Key applies it once (every service)."""

from __future__ import annotations

import uuid

from harness import CHECKOUT, assert_problem, eventually, new_product


def keyed(headers: dict[str, str], key: str | None = None) -> dict[str, str]:
    return {**headers, "Idempotency-Key": key or uuid.uuid4().hex}


def test_a_retried_cart_add_adds_once(orders, catalog, stack, staff):
    shopper = stack.customer()
    product = new_product(catalog, staff, stock=10)
    headers = keyed(shopper.headers)
    body = {"product_id": product["id"], "quantity": 3}
    first = orders.post("/cart/add", json=body, headers=headers)
    again = orders.post("/cart/add", json=body, headers=headers)
    assert first.status_code == again.status_code == 200
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    assert orders.get("/cart", headers=shopper.headers).json()["items"][0]["quantity"] == 3
    # A new key is a new request.
    orders.post("/cart/add", json=body, headers=keyed(shopper.headers))
    assert orders.get("/cart", headers=shopper.headers).json()["items"][0]["quantity"] == 6


def test_a_retry_sent_the_moment_the_answer_arrives_is_a_replay(orders, catalog, stack, staff):
    """The outcome is recorded before the answer leaves: a client retrying at once never
    finds its own finished request "still running"."""
    shopper = stack.customer()
    product = new_product(catalog, staff, stock=100)
    body = {"product_id": product["id"]}
    for _ in range(15):  # a cart line holds up to 20
        headers = keyed(shopper.headers)
        first = orders.post("/cart/add", json=body, headers=headers)
        assert first.status_code == 200, first.text
        again = orders.post("/cart/add", json=body, headers=headers)
        assert again.status_code == 200, again.text
        assert again.headers.get("idempotent-replayed") == "true", again.text
    assert orders.get("/cart", headers=shopper.headers).json()["items"][0]["quantity"] == 15


def test_a_retried_one_step_status_update_moves_once(orders, catalog, delivery, stack, staff):
    shopper = stack.customer()
    product = new_product(catalog, staff, stock=5)
    orders.post("/cart/add", json={"product_id": product["id"]}, headers=shopper.headers)
    order_id = orders.post("/order/create", json=CHECKOUT, headers=shopper.headers).json()["order_id"]
    url = f"/order/{order_id}/update-status"
    eventually(lambda: delivery.get(f"/order/{order_id}/status", headers=staff).status_code == 200)
    headers = keyed(staff)
    assert delivery.post(url, headers=headers).json()["status"] == "CONFIRMED"
    assert delivery.post(url, headers=headers).json()["status"] == "CONFIRMED"
    assert delivery.get(f"/order/{order_id}/status", headers=staff).json()["status"] == "CONFIRMED"


def test_a_retried_product_create_makes_one_product(catalog, staff):
    body = {"name": f"Keyed {uuid.uuid4().hex[:6]}", "category": "Test Shelf", "price": 10, "unit": "1 pc"}
    headers = keyed(staff)
    first = catalog.post("/products", json=body, headers=headers)
    again = catalog.post("/products", json=body, headers=headers)
    assert first.status_code == again.status_code == 201
    assert first.json()["id"] == again.json()["id"]
    assert len(catalog.get("/products", params={"q": body["name"]}).json()) == 1


def test_the_same_key_with_another_body_is_refused(orders, catalog, stack, staff):
    shopper = stack.customer()
    product = new_product(catalog, staff, stock=10)
    headers = keyed(shopper.headers)
    orders.post("/cart/add", json={"product_id": product["id"], "quantity": 1}, headers=headers)
    changed = orders.post("/cart/add", json={"product_id": product["id"], "quantity": 2}, headers=headers)
    assert assert_problem(changed, 422)["type"].endswith("idempotency-key-reused")


def test_keys_belong_to_their_user(orders, catalog, stack, staff):
    product = new_product(catalog, staff, stock=10)
    key = uuid.uuid4().hex
    for shopper in (stack.customer(), stack.customer()):
        added = orders.post("/cart/add", json={"product_id": product["id"]}, headers=keyed(shopper.headers, key))
        assert "idempotent-replayed" not in added.headers
        assert orders.get("/cart", headers=shopper.headers).json()["items"][0]["quantity"] == 1


def test_a_refusal_leaves_nothing_behind_so_a_retry_after_the_fix_runs_and_bad_keys_are_422(
    orders, catalog, stack, staff
):
    shopper = stack.customer()
    product = new_product(catalog, staff, stock=1)
    headers = keyed(shopper.headers)
    body = {"product_id": product["id"], "quantity": 2}
    assert_problem(orders.post("/cart/add", json=body, headers=headers), 409)
    catalog.patch(f"/products/{product['id']}", json={"stock": 5}, headers=staff)
    retried = orders.post("/cart/add", json=body, headers=headers)
    assert retried.status_code == 200
    assert "idempotent-replayed" not in retried.headers
    replayed = orders.post("/cart/add", json=body, headers=headers)
    assert replayed.status_code == 200
    assert replayed.headers["idempotent-replayed"] == "true"
    assert orders.get("/cart", headers=shopper.headers).json()["items"][0]["quantity"] == 2
    assert_problem(orders.post("/cart/add", json=body, headers=keyed(shopper.headers, "k" * 201)), 422)


def test_requests_without_a_token_are_not_stored(users):
    headers = {"Idempotency-Key": uuid.uuid4().hex}
    for _ in range(2):
        answer = users.post(
            "/login", json={"email": "nobody@example.com", "password": "wrong-password"}, headers=headers
        )
        assert_problem(answer, 401)
        assert "idempotent-replayed" not in answer.headers


def test_the_caller_of_an_idempotent_write_is_verified_once(orders, catalog, stack, staff, monkeypatch):
    """The idempotency layer needs the caller before routing, the route needs it too: the
    token is checked once per request, and the route gets that result."""
    verifier = stack.servers["orders"].app.state.token_verifier
    verified: list[str] = []
    original = verifier.verify

    async def counting(token: str):
        verified.append(token)
        return await original(token)

    monkeypatch.setattr(verifier, "verify", counting)
    shopper = stack.customer()
    product = new_product(catalog, staff, stock=5)
    added = orders.post("/cart/add", json={"product_id": product["id"]}, headers=keyed(shopper.headers))
    assert added.status_code == 200, added.text
    assert len(verified) == 1
    # Without a key, the route alone checks it: once as well.
    assert orders.get("/cart", headers=shopper.headers).status_code == 200
    assert len(verified) == 2
