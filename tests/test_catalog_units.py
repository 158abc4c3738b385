"""The catalog's models, views and rules, without servers: documents exactly as stored,
answers exactly as sent, refusals exactly as explained."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from bson import ObjectId

from winkit.catalog.models import ProductEdit, ProductRecord, ReservedLine, StockReservation
from winkit.catalog.products import _edit, _new_product
from winkit.catalog.read_model import CatalogReadModel
from winkit.catalog.schemas import ProductUpdate, Reservation
from winkit.catalog.stock import Refused, _described, _refusal, _repriced
from winkit.catalog.store import _at_first_version
from winkit.core.errors import OutOfStock, PricesChanged

AT = datetime(2025, 1, 2, 3, 4, 5, 123000, tzinfo=UTC)
OID = ObjectId("0123456789abcdef01234567")
LINKS = "http://shop.example/api"


def stored_product(**changes: object) -> dict:
    """A product document as the catalog writes it."""
    return {
        "_id": OID,
        "sku": "tea-1",
        "name": "Masala Tea",
        "name_key": "masala tea",
        "category": "Drinks",
        "price_paise": 4950,
        "currency": "INR",
        "unit": "1 box",
        "stock": 5,
        "description": "Strong.",
        "created_at": AT,
        "updated_at": AT,
        "deleted_at": None,
        "version": 3,
        **changes,
    }


def test_a_product_document_round_trips_exactly():
    doc = stored_product(deleted_at=AT)
    again = ProductRecord.from_document(doc).to_document()
    assert again == doc
    assert list(again) == list(doc)
    assert [type(v) for v in again.values()] == [type(v) for v in doc.values()]


def test_a_product_from_before_versions_reads_with_defaults():
    old = stored_product()
    for field in ("currency", "description", "created_at", "version", "deleted_at"):
        del old[field]
    product = ProductRecord.from_document({**old, "added_later": True})
    assert (product.currency, product.description, product.version, product.deleted_at) == ("INR", "", 0, None)


def test_a_new_product_is_stored_whole_at_version_1():
    product = _at_first_version(
        _new_product(
            sku="tea-1",
            name="Masala Tea",
            category="Drinks",
            price_paise=4950,
            unit="1 box",
            stock=5,
            description="Strong.",
            at=AT,
        )
    )
    doc = product.to_document()
    assert isinstance(doc["_id"], ObjectId)
    assert doc == stored_product(_id=doc["_id"], version=1)


def test_an_edit_sets_only_what_changed():
    edit = _edit(ProductUpdate.model_validate({"name": "Ginger Tea", "price": "12.5", "description": ""}))
    set_ = edit.to_document()
    assert set_ == {
        "name": "Ginger Tea",
        "name_key": "ginger tea",
        "price_paise": 1250,
        "description": "",
        "updated_at": set_["updated_at"],
    }
    assert isinstance(set_["updated_at"], datetime)
    assert ProductEdit(deleted_at=AT).to_document() == {"deleted_at": AT}


def test_a_reservation_document_round_trips_exactly():
    doc = {
        "_id": "order-1",
        "items": [
            {"product_id": str(OID), "quantity": 2, "price_paise": 4950},
            {"product_id": "89abcdef0123456789abcdef", "quantity": 1, "price_paise": None},
        ],
        "status": "confirmed",
        "created_at": AT,
        "updated_at": AT,
    }
    again = StockReservation.from_document(doc).to_document()
    assert again == doc
    assert list(again) == list(doc)
    assert [list(item) for item in again["items"]] == [["product_id", "quantity", "price_paise"]] * 2


def test_a_release_before_any_reserve_leaves_an_empty_marker():
    marker = StockReservation.released_marker("order-2", AT).to_document()
    assert marker == {"_id": "order-2", "items": [], "status": "released", "created_at": AT, "updated_at": AT}


def test_a_product_is_shown_exactly_as_before():
    model = CatalogReadModel(LINKS)
    assert model.apply(ProductRecord.from_document(stored_product()))
    body = (
        b'{"id":"0123456789abcdef01234567","sku":"tea-1","name":"Masala Tea","category":"Drinks","price":49.5,'
        b'"price_paise":4950,"currency":"INR","unit":"1 box","stock":5,"description":"Strong.",'
        b'"image_url":"http://shop.example/api/catalog/products/0123456789abcdef01234567/image.svg",'
        b'"updated_at":"2025-01-02T03:04:05.123000Z"}'
    )
    shown = model.product(str(OID))
    assert shown is not None
    assert shown.body == body
    assert model.view(ProductRecord.from_document(stored_product())).model_dump_json().encode() == body
    assert model.products(category=None, q="TEA", limit=None, offset=0).body == b"[" + body + b"]"
    assert model.products(category="Food", q=None, limit=None, offset=0).body == b"[]"
    assert model.categories().body == (
        b'[{"name":"Drinks","count":1,"image_url":"http://shop.example/api/catalog/categories/Drinks/image.svg"}]'
    )


def test_a_reservation_is_answered_exactly_as_before():
    reservation = StockReservation(
        order_id="order-1",
        items=[
            ReservedLine(product_id=str(OID), quantity=2),
            ReservedLine(product_id=str(OID), quantity=1, price_paise=5),
        ],
        status="reserved",
        created_at=AT,
        updated_at=AT,
    )
    assert Reservation.of(reservation).model_dump_json().encode() == (
        b'{"order_id":"order-1","status":"reserved","items":['
        b'{"product_id":"0123456789abcdef01234567","quantity":2,"price_paise":null},'
        b'{"product_id":"0123456789abcdef01234567","quantity":1,"price_paise":5}]}'
    )


def test_refused_lines_say_what_there_is_and_what_it_costs_now():
    product = ProductRecord.from_document(stored_product(stock=1, price_paise=5200))
    gone = ProductRecord.from_document(stored_product(_id=ObjectId(), deleted_at=AT))
    found = {str(product.id): product, str(gone.id): gone}
    seen_at_old_price = ReservedLine(product_id=str(product.id), quantity=2, price_paise=4950)
    seen_at_current_price = ReservedLine(product_id=str(product.id), quantity=2, price_paise=5200)
    no_price_shown = ReservedLine(product_id=str(product.id), quantity=2)
    assert _repriced(seen_at_old_price, product)
    assert not _repriced(seen_at_current_price, product)
    assert not _repriced(no_price_shown, product)
    assert not _repriced(ReservedLine(product_id=str(gone.id), quantity=1, price_paise=1), gone)

    unknown = ReservedLine(product_id="89abcdef0123456789abcdef", quantity=3)
    short = _described([no_price_shown, ReservedLine(product_id=str(gone.id), quantity=1), unknown], found)
    problem = _refusal(Refused(short, []))
    assert isinstance(problem, OutOfStock)
    assert problem.detail == (
        "Not enough stock: only 1 of Masala Tea left; Masala Tea is out of stock; "
        "An item no longer sold is out of stock."
    )
    assert problem.extensions == {
        "short_items": [
            {"product_id": str(product.id), "name": "Masala Tea", "requested": 2, "available": 1},
            {"product_id": str(gone.id), "name": "Masala Tea", "requested": 1, "available": 0},
            {"product_id": unknown.product_id, "name": "An item no longer sold", "requested": 3, "available": 0},
        ]
    }

    repriced = _refusal(Refused(short, _described([seen_at_old_price], found)))
    assert isinstance(repriced, PricesChanged)
    assert repriced.detail == "Prices changed since you saw them: Masala Tea. Check the new prices and order again."
    [changed] = repriced.extensions["changed_items"]
    assert list(changed) == ["product_id", "name", "requested", "available", "shown_price", "price"]
    assert (changed["shown_price"], changed["price"]) == (Decimal("49.50"), Decimal("52.00"))
