"""Catalog service over HTTP against the embedded database."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
from harness import assert_problem

PRODUCT_FIELDS = {"id", "name", "category", "price", "currency", "unit", "stock", "image_url"}


def test_demo_catalog_is_seeded(catalog):
    products = catalog.get("/products").json()
    categories = catalog.get("/categories").json()
    assert len(products) >= 60
    assert len(categories) >= 8
    assert all(set(p) >= PRODUCT_FIELDS for p in products)
    assert all(p["currency"] == "INR" and p["price"] == p["price_paise"] / 100 for p in products)
    assert [c["name"] for c in categories] == sorted(c["name"] for c in categories)
    assert sum(c["count"] for c in categories) == len(products)


def public_path(url: str, stack) -> str:
    """A public link as the catalog's own path (the test talks to the catalog directly)."""
    prefix = f"{stack.settings.effective_public_api_url}/catalog"
    assert url.startswith(prefix), url
    return url.removeprefix(prefix)


def test_product_image_is_served_locally(catalog, stack):
    product = catalog.get("/products", params={"limit": 1}).json()[0]
    image = catalog.get(public_path(product["image_url"], stack))
    assert image.status_code == 200
    assert image.headers["content-type"].startswith("image/svg+xml")
    ET.fromstring(image.text)
    category = catalog.get("/categories").json()[0]
    assert catalog.get(public_path(category["image_url"], stack)).status_code == 200


def test_links_come_from_configuration_never_from_the_host_header(catalog, stack):
    evil = {"Host": "evil.example", "X-Forwarded-Host": "evil.example", "X-Forwarded-Proto": "gopher"}
    product = catalog.get("/products", params={"limit": 1}, headers=evil).json()[0]
    assert product["image_url"].startswith(f"{stack.settings.effective_public_api_url}/catalog/products/")
    for category in catalog.get("/categories", headers=evil).json():
        # Category names hold spaces, commas and '&': each link is still one valid URL.
        assert " " not in category["image_url"]
        assert "&" not in category["image_url"]
        assert catalog.get(public_path(category["image_url"], stack)).status_code == 200


def test_filter_by_category_is_exact(catalog):
    category = catalog.get("/categories").json()[0]
    products = catalog.get("/products", params={"category": category["name"]}).json()
    assert len(products) == category["count"]
    assert {p["category"] for p in products} == {category["name"]}
    assert catalog.get("/products", params={"category": category["name"][:-1]}).json() == []


def test_search_is_case_insensitive_and_literal(catalog):
    found = catalog.get("/products", params={"q": "MILK"}).json()
    assert found
    assert all("milk" in p["name"].lower() for p in found)
    assert catalog.get("/products", params={"q": ".*"}).json() == []
    assert catalog.get("/products", params={"q": "("}).status_code == 200


def test_limit_and_offset_page_through(catalog):
    everything = catalog.get("/products").json()
    page = catalog.get("/products", params={"limit": 5, "offset": 5}).json()
    assert [p["id"] for p in page] == [p["id"] for p in everything[5:10]]


@pytest.mark.parametrize(
    "params",
    [
        {"category[$ne]": "x"},
        {"limit": "0"},
        {"limit": "ten"},
        {"offset": "-1"},
        {"offset": str(2**70)},
        {"q": "x" * 101},
    ],
)
def test_bad_or_operator_queries_are_refused(catalog, params):
    assert_problem(catalog.get("/products", params=params), 422)


def test_operator_text_is_a_literal_value(catalog):
    assert catalog.get("/products", params={"category": '{"$ne": null}'}).json() == []


def test_one_product_and_unknown_ids(catalog):
    product = catalog.get("/products", params={"limit": 1}).json()[0]
    assert catalog.get(f"/products/{product['id']}").json()["id"] == product["id"]
    assert_problem(catalog.get("/products/0123456789abcdef01234567"), 404)
    assert_problem(catalog.get("/products/not-an-id"), 404)


def test_staff_edits_products_customers_cannot(catalog, stack):
    staff, customer = stack.staff_headers(), stack.customer().headers
    new = {"name": "Test Jaggery Cubes", "category": "Sweet Tooth", "price": 89.5, "unit": "250 g", "stock": 3}
    assert_problem(catalog.post("/products", json=new), 401)
    assert_problem(catalog.post("/products", json=new, headers=customer), 403)
    created = catalog.post("/products", json=new, headers=staff)
    assert created.status_code == 201, created.text
    product = created.json()
    assert product["price"] == 89.5
    assert product["price_paise"] == 8950
    assert product["stock"] == 3

    path = f"/products/{product['id']}"
    assert_problem(catalog.patch(path, json={"stock": 1}, headers=customer), 403)
    patched = catalog.patch(path, json={"stock": 42, "price": "90.25"}, headers=staff)
    assert patched.status_code == 200
    assert patched.json()["stock"] == 42
    assert patched.json()["price_paise"] == 9025
    assert catalog.get(path).json()["stock"] == 42

    assert_problem(catalog.delete(path, headers=customer), 403)
    assert catalog.delete(path, headers=staff).status_code == 204
    assert_problem(catalog.get(path), 404)
    assert_problem(catalog.delete(path, headers=staff), 404)


@pytest.mark.parametrize(
    "body",
    [
        {"price": 10.555},
        {"price": -1},
        {"price": 0},
        {"stock": -1},
        {"stock": 1.5},
        {"stock": "7"},
        {"name": ""},
        {"currency": "USD"},
    ],
)
def test_bad_product_edits_are_422(catalog, stack, body):
    product = catalog.get("/products", params={"limit": 1}).json()[0]
    response = catalog.patch(f"/products/{product['id']}", json=body, headers=stack.staff_headers())
    assert_problem(response, 422)


def test_product_create_needs_all_fields(catalog, stack):
    response = catalog.post("/products", json={"name": "Lonely"}, headers=stack.staff_headers())
    assert_problem(response, 422)
