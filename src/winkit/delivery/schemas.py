"""The delivery service's API contract."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from winkit.core.address import ShippingAddress
from winkit.core.event_contracts import OrderCreated
from winkit.core.money import Rupees
from winkit.core.order_status import OrderStatus


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


class ShopperCancellation(BaseModel):
    """From the cart & order service: the shopper asks to cancel their order."""

    model_config = ConfigDict(extra="forbid")

    user_id: str = Field(max_length=64)
    order: OrderCreated = Field(description="The order as order.created carries it (opens a missing record)")


class StatusUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: OrderStatus
