"""The cart & order service's models without servers: the documents it stores (exactly as
before), the answers built from them, the events it announces, and its arithmetic."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import bson
import pytest
from bson import ObjectId
from pymongo import AsyncMongoClient
from pymongo.errors import ExecutionTimeout

from winkit.core.address import ShippingAddress
from winkit.core.event_contracts import OrderedItem
from winkit.core.order_status import OrderStatus
from winkit.core.outbox import Outbox
from winkit.orders.catalog_client import CatalogProduct
from winkit.orders.delivery_client import CancelledDelivery
from winkit.orders.models import CartItem, CheckoutHold, OrderChange, OrderRecord, PricedCart, Unplaced
from winkit.orders.ordering import created_data
from winkit.orders.pricing import FeeRule, totals
from winkit.orders.schemas import Cart, Order
from winkit.orders.store import OrdersStore, StoreUnavailable

ORDER_ID = ObjectId("65f0c0ffee0000000000abcd")
CREATED = datetime(2025, 3, 1, 9, 30, 15, 123456, tzinfo=UTC)
PLACED = datetime(2025, 3, 1, 9, 30, 16, 250000, tzinfo=UTC)
ADDRESS = {
    "name": "Asha Rao",
    "phone": "+919876543210",
    "line1": "12 MG Road",
    "line2": None,
    "landmark": "Near the metro",
    "city": "Bengaluru",
    "pincode": "560001",
}
# An order as checkout stores it (PENDING: stock being reserved), field for field.
PENDING_ORDER = {
    "_id": ORDER_ID,
    "user_id": "u1",
    "status": "PENDING",
    "items": [
        {"product_id": "p1", "name": "Milk 1 l", "price_paise": 4950, "quantity": 3},
        {"product_id": "p2", "name": "Bread", "price_paise": 4000, "quantity": 1},
    ],
    "subtotal_paise": 18850,
    "delivery_fee_paise": 2500,
    "total_paise": 21350,
    "address": ADDRESS,
    "note": None,
    "idempotency_key": "key:u1:k-1",
    "created_at": CREATED,
    "updated_at": CREATED,
}


def cart_item(product_id: str, price_paise: int, quantity: int, name: str = "Milk 1 l") -> CartItem:
    return CartItem(
        user_id="u1", product_id=product_id, name=name, price_paise=price_paise, quantity=quantity, added_at=CREATED
    )


def pending_order() -> OrderRecord:
    """Built as checkout builds it, not read."""
    return OrderRecord(
        id=ORDER_ID,
        user_id="u1",
        status=Unplaced.PENDING,
        items=[
            OrderedItem(product_id="p1", name="Milk 1 l", price_paise=4950, quantity=3),
            OrderedItem(product_id="p2", name="Bread", price_paise=4000, quantity=1),
        ],
        subtotal_paise=18850,
        delivery_fee_paise=2500,
        total_paise=21350,
        address=ShippingAddress.model_validate(ADDRESS),
        note=None,
        idempotency_key="key:u1:k-1",
        created_at=CREATED,
        updated_at=CREATED,
    )


def placed_order() -> OrderRecord:
    promised = PLACED + timedelta(minutes=10)
    return pending_order().model_copy(
        update={"status": OrderStatus.PLACED, "placed_at": PLACED, "promised_at": promised}
    )


def test_fee_rule_and_totals_in_paise():
    rule = FeeRule(fee_paise=2500, free_from_paise=19900)
    assert totals([], rule).total_paise == 0
    small = totals([cart_item("p1", 4950, 3)], rule)
    assert (small.subtotal_paise, small.delivery_fee_paise, small.total_paise) == (14850, 2500, 17350)
    at_threshold = totals([cart_item("p1", 9950, 2)], rule)
    assert at_threshold.delivery_fee_paise == 0
    assert at_threshold.total_paise == 19900


def test_an_order_is_stored_exactly_as_checkout_always_stored_it():
    # Byte for byte: field order, types (a status is a plain string) and which fields exist.
    assert bson.encode(pending_order().to_document()) == bson.encode(PENDING_ORDER)
    assert pending_order() == OrderRecord.from_document(PENDING_ORDER)


def test_stored_orders_read_back_to_the_same_document():
    placed = {
        **PENDING_ORDER,
        "status": "CONFIRMED",
        "updated_at": PLACED,
        "placed_at": PLACED,
        "promised_at": PLACED + timedelta(minutes=10),
        "delivery_version": 2,
    }
    # From before addresses and notes were asked for: none stored, none added.
    old = {k: v for k, v in PENDING_ORDER.items() if k not in ("address", "note")}
    for doc in (placed, old):
        order = OrderRecord.from_document(bson.decode(bson.encode(doc)))
        assert bson.encode(order.to_document()) == bson.encode(doc)
    assert OrderRecord.from_document(placed).status is OrderStatus.CONFIRMED
    assert OrderRecord.from_document(old).address is None
    assert placed_order().to_document() == {
        **PENDING_ORDER,
        "status": "PLACED",
        "placed_at": PLACED,
        "promised_at": PLACED + timedelta(minutes=10),
    }


def test_cart_items_and_checkout_holds_keep_their_documents():
    item = {
        "_id": ObjectId(),
        "user_id": "u1",
        "product_id": "p1",
        "quantity": 2,
        "name": "Milk 1 l",
        "price_paise": 4950,
        "added_at": CREATED,
    }
    read = CartItem.from_document(item)
    assert (read.id, read.quantity, read.price_paise) == (item["_id"], 2, 4950)
    assert read.to_document() == item
    hold = CheckoutHold(user_id="u1", order_id=ORDER_ID, since=CREATED)
    assert list(hold.to_document().items()) == [("_id", "u1"), ("order_id", ORDER_ID), ("since", CREATED)]
    ended = CheckoutHold.from_document({"_id": "u1", "order_id": None, "since": CREATED})
    assert ended.order_id is None


def test_an_order_change_sets_only_what_it_names():
    assert OrderChange(status=Unplaced.ABANDONED).to_document() == {"status": "ABANDONED"}
    change = OrderChange(status=OrderStatus.CANCELLED, updated_at=PLACED, delivery_version=3)
    assert change.to_document() == {"status": "CANCELLED", "updated_at": PLACED, "delivery_version": 3}


def test_an_order_answers_in_rupees_as_before():
    assert Order.of(placed_order()).model_dump_json() == (
        '{"order_id":"65f0c0ffee0000000000abcd","user_id":"u1","status":"PLACED",'
        '"items":[{"product_id":"p1","name":"Milk 1 l","price":49.5,"quantity":3,"line_total":148.5},'
        '{"product_id":"p2","name":"Bread","price":40.0,"quantity":1,"line_total":40.0}],'
        '"subtotal":188.5,"delivery_fee":25.0,"total":213.5,"currency":"INR",'
        '"address":{"name":"Asha Rao","phone":"+919876543210","line1":"12 MG Road","line2":null,'
        '"landmark":"Near the metro","city":"Bengaluru","pincode":"560001"},'
        '"note":null,"created_at":"2025-03-01T09:30:15.123456Z","updated_at":"2025-03-01T09:30:15.123456Z",'
        '"promised_at":"2025-03-01T09:40:16.250000Z"}'
    )


def test_a_cart_answers_with_stock_and_totals():
    rule = FeeRule(fee_paise=2500, free_from_paise=19900)
    items = [cart_item("p1", 4950, 3), cart_item("p2", 4000, 1, name="Bread")]
    cart = PricedCart(
        user_id="u1",
        items=items,
        in_stock={"p1": 7, "p2": 0},
        totals=totals(items, rule),
        free_delivery_from_paise=19900,
    )
    assert Cart.of(cart).model_dump_json() == (
        '{"user_id":"u1","items":['
        '{"product_id":"p1","name":"Milk 1 l","price":49.5,"quantity":3,"line_total":148.5,"in_stock":7},'
        '{"product_id":"p2","name":"Bread","price":40.0,"quantity":1,"line_total":40.0,"in_stock":0}],'
        '"subtotal":188.5,"delivery_fee":25.0,"total":213.5,"currency":"INR","free_delivery_from":199.0}'
    )


def test_order_created_carries_the_placed_order():
    assert created_data(placed_order()).model_dump(mode="json") == {
        "order_id": "65f0c0ffee0000000000abcd",
        "user_id": "u1",
        "items": PENDING_ORDER["items"],
        "total_paise": 21350,
        "address": ADDRESS,
        "created_at": "2025-03-01T09:30:15.123456+00:00",
        "placed_at": "2025-03-01T09:30:16.250000+00:00",
        "promised_at": "2025-03-01T09:40:16.250000+00:00",
    }


def test_other_services_answers_are_read_for_what_this_one_uses():
    product = CatalogProduct.model_validate_json(
        '{"id":"p1","sku":"MILK-1","name":"Milk 1 l","category":"Dairy","price":49.5,"price_paise":4950,'
        '"currency":"INR","unit":"1 l","stock":7,"description":"","image_url":"","updated_at":"2025-03-01T09:30:15Z"}'
    )
    assert product == CatalogProduct(id="p1", name="Milk 1 l", price_paise=4950, stock=7)
    assert CancelledDelivery.model_validate_json('{"order_id":"x","status":"CANCELLED","version":4}').version == 4


async def test_a_time_limited_store_operation_fails_as_the_store_says():
    client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient("mongodb://127.0.0.1:9", connect=False)
    try:
        store = OrdersStore(client["winkit_orders"], Outbox(client["winkit_orders"], "orders"))
        with pytest.raises(StoreUnavailable, match="ExecutionTimeout"), store.time_limit(0.1):
            raise ExecutionTimeout("operation exceeded time limit")
    finally:
        await client.close()
