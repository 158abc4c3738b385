"""The delivery service's API contract."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from winkit.delivery.lifecycle import Status
from winkit.platform.address import ShippingAddress
from winkit.platform.money import Rupees


class HistoryEntry(BaseModel):
    status: Status
    at: datetime
    by: str


class DeliveryStatus(BaseModel):
    order_id: str
    status: Status
    history: list[HistoryEntry]
    allowed_next: list[Status]
    updated_at: datetime
    promised_at: datetime | None = Field(description="When the order was promised to arrive")


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


class StatusUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: Status
