"""What the app reads from the Winkit API, typed.

The app is a client: it knows the API's JSON, not the services' code (so a mobile build
carries Flet, httpx and pydantic, never the servers). Unknown fields are ignored, so a
newer API does not break an older app.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from pydantic import BaseModel, ConfigDict, Field


class ApiModel(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class Category(ApiModel):
    name: str
    count: int
    image_url: str


class Product(ApiModel):
    id: str
    name: str
    category: str
    price: Decimal
    unit: str
    stock: int
    description: str = ""
    image_url: str


class CartLine(ApiModel):
    product_id: str
    name: str
    price: Decimal
    quantity: int
    line_total: Decimal


class Cart(ApiModel):
    items: list[CartLine]
    subtotal: Decimal
    delivery_fee: Decimal
    total: Decimal
    free_delivery_from: Decimal | None = None

    @property
    def count(self) -> int:
        return sum(line.quantity for line in self.items)


class Address(ApiModel):
    """A delivery address: a saved one has an id."""

    id: str | None = None
    name: str | None = None
    phone: str | None = None
    line1: str
    line2: str | None = None
    landmark: str | None = None
    city: str
    pincode: str
    is_default: bool = False

    def one_line(self) -> str:
        return ", ".join(part for part in (self.line1, self.line2, self.landmark, self.city, self.pincode) if part)


class Order(ApiModel):
    order_id: str
    status: str
    items: list[CartLine]
    subtotal: Decimal
    delivery_fee: Decimal
    total: Decimal
    address: Address | None = None
    note: str | None = None
    created_at: datetime
    promised_at: datetime | None = None


class HistoryEntry(ApiModel):
    status: str
    at: datetime
    by: str


class DeliveryStatus(ApiModel):
    order_id: str
    status: str
    history: list[HistoryEntry]
    allowed_next: list[str]
    promised_at: datetime | None = None


class DeliveryItem(ApiModel):
    product_id: str
    name: str
    quantity: int


class OpenDelivery(DeliveryStatus):
    """An order on the staff board: what to pack and where it goes."""

    items: list[DeliveryItem] = Field(default_factory=list)
    address: Address | None = None
    total: Decimal | None = None
    placed_at: datetime | None = None


class Profile(ApiModel):
    id: str
    name: str
    email: str
    phone: str | None = None
    role: str


class SignedIn(ApiModel):
    """A session: the access token and who it belongs to."""

    access_token: str
    user_id: str
    role: str
    expires_in: int

    @property
    def is_staff(self) -> bool:
        return self.role in ("staff", "admin")
