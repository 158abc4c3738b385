"""The catalog's stored things: products, edits to them, and stock reservations.

Each model is one document as ``catalog.store`` keeps it (same field names, types and
presence as documents other replicas and older releases read and wrote).
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from bson import ObjectId
from pydantic import Field

from winkit.core.database import Document
from winkit.core.money import CURRENCY
from winkit.core.store import StoredModel


class ProductRecord(StoredModel):
    """A product in the ``products`` collection, deleted ones too (``deleted_at`` set).
    Every product written has every field; the defaults are for older documents."""

    # Chosen here, as the driver would choose it on insert.
    id: ObjectId = Field(alias="_id", default_factory=ObjectId)
    sku: str
    name: str
    # The name as search compares it (read_model.name_key).
    name_key: str
    category: str
    price_paise: int
    currency: str = CURRENCY
    unit: str
    stock: int
    description: str = ""
    created_at: datetime | None = None  # written, never read
    updated_at: datetime
    deleted_at: datetime | None = None
    # Raised by one by every write (a new product is at 1): whoever holds a copy can tell a
    # newer one. Documents from before versions were kept count as 0.
    version: int = 0


class ProductEdit(StoredModel):
    """Fields to set on a stored product; those left None stay as they are."""

    name: str | None = None
    name_key: str | None = None
    category: str | None = None
    price_paise: int | None = None
    unit: str | None = None
    stock: int | None = None
    description: str | None = None
    updated_at: datetime | None = None
    deleted_at: datetime | None = None

    def to_document(self) -> Document:
        return self.model_dump(exclude_none=True)


ReservationStatus = Literal["reserved", "confirmed", "released"]
RESERVED: ReservationStatus = "reserved"
CONFIRMED: ReservationStatus = "confirmed"
RELEASED: ReservationStatus = "released"


class ReservedLine(StoredModel):
    """One line of a reservation: the stock taken, and the price the shopper was shown."""

    product_id: str
    quantity: int
    price_paise: int | None = None


class StockReservation(StoredModel):
    """One order's stock reservation in the ``reservations`` collection, keyed by order id.
    A release before any reserve leaves one with no lines (``released_marker``)."""

    order_id: str = Field(alias="_id")
    items: list[ReservedLine]
    status: ReservationStatus
    created_at: datetime
    updated_at: datetime

    @classmethod
    def released_marker(cls, order_id: str, now: datetime) -> StockReservation:
        """Stands for an order released before it reserved: a late reserve finds it and takes nothing."""
        return cls(order_id=order_id, items=[], status=RELEASED, created_at=now, updated_at=now)
