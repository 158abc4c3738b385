"""The delivery service's API contract: answers build themselves from the domain's records."""

from __future__ import annotations

from datetime import datetime
from typing import Self

from pydantic import BaseModel, ConfigDict, Field

from winkit.core.address import ShippingAddress
from winkit.core.event_contracts import OrderCreated
from winkit.core.money import CURRENCY, Rupees, to_rupees
from winkit.core.order_status import OrderStatus
from winkit.delivery.lifecycle import allowed_next
from winkit.delivery.models import DeliveryRecord


class HistoryEntry(BaseModel):
    status: OrderStatus
    at: datetime
    by: str


class DeliveryStatus(BaseModel):
    order_id: str
    status: OrderStatus
    history: list[HistoryEntry]
    allowed_next: list[OrderStatus]
    updated_at: datetime
    promised_at: datetime | None = Field(description="When the order was promised to arrive")
    version: int = Field(description="Goes up by one with every change of this order's status")

    @classmethod
    def of(cls, record: DeliveryRecord) -> Self:
        return cls(
            order_id=record.order_id,
            status=record.status,
            history=[HistoryEntry(status=c.status, at=c.at, by=c.by) for c in record.history],
            allowed_next=allowed_next(record.status),
            updated_at=record.updated_at,
            promised_at=record.promised_at,
            version=record.version,
        )


class DeliveryItem(BaseModel):
    product_id: str
    name: str
    quantity: int


class OpenDelivery(DeliveryStatus):
    """A delivery as staff see it on the operations board: what to pack, where it goes."""

    user_id: str
    items: list[DeliveryItem]
    address: ShippingAddress | None
    total: Rupees | None
    currency: str
    placed_at: datetime | None

    @classmethod
    def of(cls, record: DeliveryRecord) -> Self:
        return cls(
            **dict(DeliveryStatus.of(record)),
            user_id=record.user_id,
            items=[DeliveryItem(product_id=i.product_id, name=i.name, quantity=i.quantity) for i in record.items],
            address=record.address,
            total=None if record.total_paise is None else to_rupees(record.total_paise),
            currency=CURRENCY,
            placed_at=record.placed_at,
        )


class ShopperCancellation(BaseModel):
    """From the cart & order service: the shopper asks to cancel their order."""

    model_config = ConfigDict(extra="forbid")

    user_id: str = Field(max_length=64)
    order: OrderCreated = Field(description="The order as order.created carries it (opens a missing record)")


class StatusUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: OrderStatus
