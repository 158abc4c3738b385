"""The cart & order service's API contract."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from winkit.platform.money import Rupees

ProductId = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]
Quantity = Annotated[int, Field(ge=1, le=20, strict=True)]
UserId = Annotated[str | None, Field(max_length=64, description="Optional; must be the caller's own id")]
MAX_LINE_QUANTITY = 20


class CartAdd(BaseModel):
    # Anything else (a client-sent price, say) is refused, never trusted.
    model_config = ConfigDict(extra="forbid")

    product_id: ProductId
    quantity: Quantity = 1
    user_id: UserId = None


class CartRemove(BaseModel):
    model_config = ConfigDict(extra="forbid")

    product_id: ProductId
    quantity: Quantity | None = None
    user_id: UserId = None


class Line(BaseModel):
    product_id: str
    name: str
    price: Rupees
    quantity: int
    line_total: Rupees


class Cart(BaseModel):
    user_id: str
    items: list[Line]
    subtotal: Rupees
    delivery_fee: Rupees
    total: Rupees
    currency: str


Short = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=120)]


class Address(BaseModel):
    model_config = ConfigDict(extra="forbid")

    line1: Short
    line2: Annotated[str, StringConstraints(max_length=120)] | None = None
    city: Short
    pincode: Annotated[str, StringConstraints(pattern=r"^[1-9][0-9]{5}$")]
    phone: Annotated[str, StringConstraints(pattern=r"^\+?[0-9 ()-]{7,20}$")] | None = None


class OrderCreate(BaseModel):
    model_config = ConfigDict(extra="ignore")  # totals or items sent by old clients are ignored

    address: Address | None = None
    note: Annotated[str, StringConstraints(max_length=500)] | None = None
    user_id: UserId = None


class Order(BaseModel):
    order_id: str
    user_id: str
    status: str
    items: list[Line]
    subtotal: Rupees
    delivery_fee: Rupees
    total: Rupees
    currency: str
    address: Address | None
    note: str | None
    created_at: datetime
    updated_at: datetime
