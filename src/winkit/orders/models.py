"""What the cart & order service keeps (each shopper's cart items, the hold a checkout has
on a cart, orders with the items they were placed with) and the cart as a shopper sees it.

Money is integer paise throughout; the API shows rupees (``schemas``).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from bson import ObjectId
from pydantic import BaseModel, Field

from winkit.core.address import ShippingAddress
from winkit.core.database import Document
from winkit.core.event_contracts import OrderedItem
from winkit.core.order_status import OrderStatus
from winkit.core.store import StoredModel
from winkit.orders.pricing import Totals

# An order's id, as MongoDB makes ids (stored as such, shown as its 24 hex digits).
OrderId = ObjectId


def new_order_id() -> OrderId:
    return ObjectId()


class CartItem(StoredModel):
    """One product in a shopper's cart (``cart_items``), at the name and price the shopper
    was last shown: checkout charges exactly those."""

    # None for an item just added, not read back (the database gives it its id).
    id: ObjectId | None = Field(default=None, alias="_id")
    user_id: str
    product_id: str
    name: str
    price_paise: int
    quantity: int
    added_at: datetime


class CheckoutHold(StoredModel):
    """One checkout at a time per cart (``cart_checkouts``): the order being placed from
    the shopper's cart, if any, and since when."""

    user_id: str = Field(alias="_id")
    order_id: OrderId | None
    since: datetime


class Unplaced(StrEnum):
    """The statuses of an order not placed; never shown to shoppers."""

    PENDING = "PENDING"  # stock being reserved
    ABANDONED = "ABANDONED"  # a stale checkout whose stock is being given back


class OrderRecord(StoredModel):
    """An order (``orders``): its items at the prices charged, the totals computed when it
    was placed (whatever the fee rule is now) and its status as the delivery service last
    reported it."""

    id: OrderId = Field(alias="_id")
    user_id: str
    status: OrderStatus | Unplaced
    items: list[OrderedItem]
    subtotal_paise: int
    delivery_fee_paise: int
    total_paise: int
    # Orders from before addresses (and notes) were asked for have none.
    address: ShippingAddress | None = None
    note: str | None = None
    # Every order has one: "key:<user>:<Idempotency-Key>" or "order:<id>".
    idempotency_key: str
    created_at: datetime
    updated_at: datetime
    # Set once placed.
    placed_at: datetime | None = None
    promised_at: datetime | None = None
    # The version of the delivery status shown; an older one reported late is ignored.
    delivery_version: int | None = None

    def to_document(self) -> Document:
        # The order's fields given or read, no others: an order has no placed_at until it is
        # placed, no delivery_version until the delivery service reports, no address if older.
        unset = set(OrderRecord.model_fields) - self.model_fields_set
        return self.model_dump(by_alias=True, exclude=unset)


class OrderChange(BaseModel):
    """What one write changes in an order: the fields given, the others left as they are."""

    status: OrderStatus | Unplaced | None = None
    placed_at: datetime | None = None
    promised_at: datetime | None = None
    updated_at: datetime | None = None
    delivery_version: int | None = None

    def to_document(self) -> Document:
        return self.model_dump(exclude_none=True)


class PricedCart(BaseModel):
    """A shopper's cart as just checked against the catalog: each item at its product's name
    and price of now, how many of each product are in stock, and what the items come to."""

    user_id: str
    items: list[CartItem]
    # By product id; 0 for a product sold out or no longer sold.
    in_stock: dict[str, int]
    totals: Totals
    free_delivery_from_paise: int
