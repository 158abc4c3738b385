"""The delivery service's domain objects, as its store keeps them (``delivery_statuses``)."""

from __future__ import annotations

from datetime import datetime
from typing import Self

from pydantic import Field

from winkit.core.address import ShippingAddress
from winkit.core.event_contracts import OrderCreated
from winkit.core.order_status import OrderStatus
from winkit.core.store import StoredModel

# Who moved an order when no person did (opening it at PLACED).
SYSTEM = "system"


class StatusChange(StoredModel):
    """One entry of a delivery's history: the status it moved to, when and by whom."""

    status: OrderStatus
    at: datetime
    by: str


class ParcelItem(StoredModel):
    """One line of what staff pack: the product and how many."""

    product_id: str
    name: str
    quantity: int


def _when(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


class DeliveryRecord(StoredModel):
    """An order's journey from PLACED to a final status, with what staff need to pack and
    deliver it. Records opened before orders carried items, an address, a total and
    times lack those: they read as empty."""

    order_id: str = Field(alias="_id")
    user_id: str
    status: OrderStatus
    history: list[StatusChange]
    # Goes up by one with every change of status: a write checks it has not moved since read.
    version: int
    items: list[ParcelItem] = Field(default_factory=list)
    address: ShippingAddress | None = None
    total_paise: int | None = None
    placed_at: datetime | None = None
    promised_at: datetime | None = None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def placed(cls, created: OrderCreated, now: datetime) -> Self:
        """The record of an order just announced by ``order.created``: at PLACED since ``now``."""
        return cls(
            order_id=created.order_id,
            user_id=created.user_id,
            status=OrderStatus.PLACED,
            history=[StatusChange(status=OrderStatus.PLACED, at=now, by=SYSTEM)],
            version=1,
            items=[ParcelItem(product_id=i.product_id, name=i.name, quantity=i.quantity) for i in created.items],
            address=created.address,
            total_paise=created.total_paise,
            placed_at=_when(created.placed_at) or _when(created.created_at),
            promised_at=_when(created.promised_at),
            created_at=now,
            updated_at=now,
        )
