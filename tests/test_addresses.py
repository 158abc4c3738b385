"""The address book on the user service, over HTTP against the embedded database."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from harness import Customer, assert_problem

HOME = {
    "name": "Asha Shopper",
    "phone": "98765 43210",
    "line1": "Flat 4B, Lotus Apartments, 12th Main",
    "line2": "Indiranagar",
    "landmark": "Opposite the park",
    "city": "Bengaluru",
    "pincode": "560 038",
}


def add(users: httpx.Client, customer: Customer, **changes: object) -> dict:
    response = users.post("/addresses", json={**HOME, **changes}, headers=customer.headers)
    assert response.status_code == 201, response.text
    return response.json()


def book(users: httpx.Client, customer: Customer) -> list[dict]:
    response = users.get("/addresses", headers=customer.headers)
    assert response.status_code == 200, response.text
    return response.json()


def defaults(users: httpx.Client, customer: Customer) -> list[str]:
    return [a["id"] for a in book(users, customer) if a["is_default"]]


def test_create_get_list_patch_delete(users, stack):
    customer = stack.customer()
    assert book(users, customer) == []
    home = add(users, customer)
    assert set(home) == {
        "id",
        "name",
        "phone",
        "line1",
        "line2",
        "landmark",
        "city",
        "pincode",
        "is_default",
        "created_at",
        "updated_at",
    }
    assert home["phone"] == "+919876543210"
    assert home["pincode"] == "560038"
    assert home["is_default"] is True
    assert users.get(f"/addresses/{home['id']}", headers=customer.headers).json() == home

    office = add(users, customer, line1="Tower C, Tech Park", line2=None, landmark=" ")
    assert office["is_default"] is False
    assert office["line2"] is None
    assert office["landmark"] is None
    assert [a["id"] for a in book(users, customer)] == [home["id"], office["id"]]

    patched = users.patch(
        f"/addresses/{office['id']}", json={"city": "Mysuru", "pincode": "570001"}, headers=customer.headers
    )
    assert patched.status_code == 200, patched.text
    office_now = patched.json()
    assert office_now["city"] == "Mysuru"
    assert office_now["pincode"] == "570001"
    assert office_now["line1"] == office["line1"]
    assert office_now["created_at"] == office["created_at"]
    assert office_now["updated_at"] > office["updated_at"]

    cleared = users.patch(f"/addresses/{home['id']}", json={"landmark": None}, headers=customer.headers).json()
    assert cleared["landmark"] is None
    assert cleared["line2"] == "Indiranagar"
    assert cleared["is_default"] is True

    deleted = users.delete(f"/addresses/{office['id']}", headers=customer.headers)
    assert deleted.status_code == 204
    assert deleted.content == b""
    assert_problem(users.get(f"/addresses/{office['id']}", headers=customer.headers), 404)
    assert_problem(users.delete(f"/addresses/{office['id']}", headers=customer.headers), 404)
    assert [a["id"] for a in book(users, customer)] == [home["id"]]


def test_make_default_moves_the_only_default(users, stack):
    customer = stack.customer()
    first, second, third = (add(users, customer, line1=f"House {n}") for n in range(3))
    made = users.patch(f"/addresses/{third['id']}", json={"is_default": True}, headers=customer.headers)
    assert made.status_code == 200
    assert made.json()["is_default"] is True
    assert defaults(users, customer) == [third["id"]]
    # Default first, then oldest first.
    assert [a["id"] for a in book(users, customer)] == [third["id"], first["id"], second["id"]]

    # Making the default the default again changes nothing.
    users.patch(f"/addresses/{third['id']}", json={"is_default": True}, headers=customer.headers)
    assert defaults(users, customer) == [third["id"]]

    # A new address can take the default when it is saved.
    fourth = add(users, customer, line1="House 4", is_default=True)
    assert fourth["is_default"] is True
    assert defaults(users, customer) == [fourth["id"]]


def test_the_default_cannot_be_unset_directly(users, stack):
    customer = stack.customer()
    home, office = add(users, customer), add(users, customer, line1="Office")
    problem = assert_problem(
        users.patch(f"/addresses/{home['id']}", json={"is_default": False}, headers=customer.headers), 409
    )
    assert "make another address the default" in problem["detail"]
    # On an address that is not the default it is a no-op.
    unchanged = users.patch(f"/addresses/{office['id']}", json={"is_default": False}, headers=customer.headers)
    assert unchanged.status_code == 200
    assert unchanged.json()["is_default"] is False
    assert defaults(users, customer) == [home["id"]]


def test_deleting_the_default_promotes_the_oldest_remaining(users, stack):
    customer = stack.customer()
    first, second, third = (add(users, customer, line1=f"House {n}") for n in range(3))
    users.patch(f"/addresses/{third['id']}", json={"is_default": True}, headers=customer.headers)
    assert users.delete(f"/addresses/{third['id']}", headers=customer.headers).status_code == 204
    assert defaults(users, customer) == [first["id"]]
    assert users.delete(f"/addresses/{first['id']}", headers=customer.headers).status_code == 204
    assert defaults(users, customer) == [second["id"]]
    assert users.delete(f"/addresses/{second['id']}", headers=customer.headers).status_code == 204
    assert book(users, customer) == []
    # After emptying the book, the next address is the default again.
    assert add(users, customer)["is_default"] is True


def test_at_most_twenty_addresses(users, stack):
    customer = stack.customer()
    saved = [add(users, customer, line1=f"House {n}") for n in range(20)]
    problem = assert_problem(users.post("/addresses", json=HOME, headers=customer.headers), 409)
    assert "at most 20 addresses" in problem["detail"]
    assert len(book(users, customer)) == 20
    users.delete(f"/addresses/{saved[5]['id']}", headers=customer.headers)
    add(users, customer, line1="House 21")


def test_another_users_address_is_not_found(users, stack):
    alice, bob = stack.customer(), stack.customer()
    alices = add(users, alice)
    path = f"/addresses/{alices['id']}"
    assert_problem(users.get(path, headers=bob.headers), 404)
    assert_problem(users.patch(path, json={"city": "Pune"}, headers=bob.headers), 404)
    assert_problem(users.patch(path, json={"is_default": True}, headers=bob.headers), 404)
    assert_problem(users.patch(path, json={"is_default": False}, headers=bob.headers), 404)
    assert_problem(users.delete(path, headers=bob.headers), 404)
    assert book(users, bob) == []
    assert users.get(path, headers=alice.headers).json() == alices


@pytest.mark.parametrize("address_id", ["not-an-id", "0" * 24, "x" * 200])
def test_malformed_or_unknown_id_is_404(users, stack, address_id):
    customer = stack.customer()
    path = f"/addresses/{address_id}"
    assert_problem(users.get(path, headers=customer.headers), 404)
    assert_problem(users.patch(path, json={"city": "Pune"}, headers=customer.headers), 404)
    assert_problem(users.patch(path, json={"is_default": True}, headers=customer.headers), 404)
    assert_problem(users.delete(path, headers=customer.headers), 404)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("pincode", "12345", "Enter a 6-digit Indian pincode, for example 560001."),
        ("pincode", "060001", "Enter a 6-digit Indian pincode, for example 560001."),
        ("phone", "12345", "Enter a 10-digit Indian mobile number, for example 98765 43210."),
        ("phone", "call me", "Enter a 10-digit Indian mobile number, for example 98765 43210."),
    ],
)
def test_bad_input_gets_a_human_message(users, stack, field, value, message):
    customer = stack.customer()
    problem = assert_problem(users.post("/addresses", json={**HOME, field: value}, headers=customer.headers), 422)
    assert [(e["loc"], e["msg"]) for e in problem["errors"]] == [(["body", field], message)]
    home = add(users, customer)
    problem = assert_problem(
        users.patch(f"/addresses/{home['id']}", json={field: value}, headers=customer.headers), 422
    )
    assert [(e["loc"], e["msg"]) for e in problem["errors"]] == [(["body", field], message)]


@pytest.mark.parametrize(
    "body",
    [
        {"name": None},
        {"phone": None},
        {"line1": None},
        {"city": None},
        {"pincode": None},
        {"is_default": None},
        {"line1": ""},
        {"user_id": "someone-else"},
        {"id": "abc"},
    ],
)
def test_patch_bad_input_is_422_and_changes_nothing(users, stack, body):
    customer = stack.customer()
    home = add(users, customer)
    assert_problem(users.patch(f"/addresses/{home['id']}", json=body, headers=customer.headers), 422)
    assert users.get(f"/addresses/{home['id']}", headers=customer.headers).json() == home


@pytest.mark.parametrize("missing", ["name", "phone", "line1", "city", "pincode"])
def test_create_needs_every_required_field(users, stack, missing):
    customer = stack.customer()
    body = {k: v for k, v in HOME.items() if k != missing}
    problem = assert_problem(users.post("/addresses", json=body, headers=customer.headers), 422)
    assert [e["loc"] for e in problem["errors"]] == [["body", missing]]


def test_every_route_needs_a_token(users, stack):
    customer = stack.customer()
    path = f"/addresses/{add(users, customer)['id']}"
    assert_problem(users.get("/addresses"), 401)
    assert_problem(users.post("/addresses", json=HOME), 401)
    assert_problem(users.get(path), 401)
    assert_problem(users.patch(path, json={"city": "Pune"}), 401)
    assert_problem(users.delete(path), 401)
    assert_problem(users.get("/addresses", headers={"Authorization": "Bearer nonsense"}), 401)


def test_staff_have_an_address_book_too(users, stack):
    staff = stack.staff_headers()
    created = users.post("/addresses", json=HOME, headers=staff)
    assert created.status_code == 201, created.text
    assert users.delete(f"/addresses/{created.json()['id']}", headers=staff).status_code == 204


def test_parallel_make_default_leaves_exactly_one_default(users, stack):
    customer = stack.customer()
    ids = [add(users, customer, line1=f"House {n}")["id"] for n in range(8)]

    def make_default(address_id: str) -> int:
        with httpx.Client(base_url=stack.servers["users"].url, timeout=60) as client:
            path = f"/addresses/{address_id}"
            return client.patch(path, json={"is_default": True}, headers=customer.headers).status_code

    with ThreadPoolExecutor(max_workers=len(ids)) as pool:
        assert list(pool.map(make_default, ids)) == [200] * len(ids)
    [default] = defaults(users, customer)
    assert default in ids


def test_parallel_deletes_and_make_default_keep_one_default(users, stack):
    customer = stack.customer()
    ids = [add(users, customer, line1=f"House {n}")["id"] for n in range(8)]
    # Delete the default and four others while the rest are each made the default.
    deleted, promoted = ids[:5], ids[5:]

    def delete(address_id: str) -> int:
        with httpx.Client(base_url=stack.servers["users"].url, timeout=60) as client:
            return client.delete(f"/addresses/{address_id}", headers=customer.headers).status_code

    def make_default(address_id: str) -> int:
        with httpx.Client(base_url=stack.servers["users"].url, timeout=60) as client:
            path = f"/addresses/{address_id}"
            return client.patch(path, json={"is_default": True}, headers=customer.headers).status_code

    with ThreadPoolExecutor(max_workers=len(ids)) as pool:
        deletes = [pool.submit(delete, i) for i in deleted]
        makes = [pool.submit(make_default, i) for i in promoted]
        assert [f.result() for f in deletes] == [204] * len(deleted)
        assert [f.result() for f in makes] == [200] * len(promoted)
    remaining = book(users, customer)
    assert sorted(a["id"] for a in remaining) == sorted(promoted)
    assert sum(a["is_default"] for a in remaining) == 1


def test_parallel_first_addresses_make_one_default_and_respect_the_cap(users, stack):
    customer = stack.customer()

    def create(n: int) -> int:
        with httpx.Client(base_url=stack.servers["users"].url, timeout=60) as client:
            body = {**HOME, "line1": f"House {n}"}
            return client.post("/addresses", json=body, headers=customer.headers).status_code

    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(pool.map(create, range(24)))
    assert sorted(statuses) == [201] * 20 + [409] * 4
    saved = book(users, customer)
    assert len(saved) == 20
    assert sum(a["is_default"] for a in saved) == 1
