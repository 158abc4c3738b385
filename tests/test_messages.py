"""Errors say what to do, in words: never a regular expression or a parser's jargon."""

from __future__ import annotations

import pytest
from harness import assert_problem, new_product

JARGON = ("dictionary", "pattern", "regex", "^", "$", "Value error", "Input should be a valid")


def messages(problem: dict) -> list[str]:
    return [error["msg"] for error in problem.get("errors", [])]


def assert_plain(problem: dict) -> None:
    for message in [problem["detail"], *messages(problem)]:
        assert not any(word in message for word in JARGON), message


@pytest.mark.parametrize("body", [[1, 2], "text", {"product_id": 5}, {"product_id": "x", "quantity": "two"}])
def test_malformed_bodies_get_plain_words(orders, stack, body):
    shopper = stack.customer()
    assert_plain(assert_problem(orders.post("/cart/add", json=body, headers=shopper.headers), 422))


def test_a_sold_out_product_reads_as_out_of_stock(orders, catalog, stack, staff):
    product = new_product(catalog, staff, stock=0)
    refused = orders.post("/cart/add", json={"product_id": product["id"]}, headers=stack.customer().headers)
    assert assert_problem(refused, 409)["detail"] == f"{product['name']} is out of stock."


def test_staff_field_errors_say_what_to_type(catalog, staff):
    body = {"name": "X", "category": "Y", "price": 1, "unit": "1 pc", "sku": "Not A Sku!"}
    problem = assert_problem(catalog.post("/products", json=body, headers=staff), 422)
    assert_plain(problem)
    assert "lower-case letters, digits and dashes" in messages(problem)[0]


def test_address_fields_say_what_to_type(users, stack):
    shopper = stack.customer()
    body = {"name": "", "phone": "12", "line1": "1 X", "city": "Y", "pincode": "12345"}
    problem = assert_problem(users.post("/addresses", json=body, headers=shopper.headers), 422)
    assert_plain(problem)
    assert {tuple(e["loc"][1:]) for e in problem["errors"]} == {("name",), ("phone",), ("pincode",)}


def test_sign_up_and_sign_in_fields_say_what_to_type(users):
    body = {"name": "A", "email": "a@example.com", "password": "long enough", "otp": "12ab"}
    problem = assert_problem(users.post("/register", json=body), 422)
    assert_plain(problem)
    assert messages(problem) == ["Enter the 6 digits of the code we emailed you."]
    problem = assert_problem(users.post("/login", json={"email": "no-at-sign", "password": "x"}), 422)
    assert messages(problem) == ["Enter the email address you signed up with."]
