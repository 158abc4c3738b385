"""The catalog service's API contract."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from winkit.platform.money import Rupees, RupeesInput

Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=120)]
Sku = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9-]{1,80}$")]
Stock = Annotated[int, Field(ge=0, le=100_000, strict=True)]


class ProductQuery(BaseModel):
    # Unknown parameters (e.g. category[$ne]) are refused rather than silently ignored.
    model_config = ConfigDict(extra="forbid")

    category: Annotated[str | None, Field(max_length=120)] = None
    q: Annotated[str | None, Field(max_length=100, description="Case-insensitive name search")] = None
    limit: Annotated[int | None, Field(ge=1, le=500)] = None
    offset: Annotated[int, Field(ge=0, le=100_000)] = 0


class Product(BaseModel):
    id: str
    sku: str
    name: str
    category: str
    price: Rupees
    price_paise: int
    currency: str
    unit: str
    stock: int
    description: str
    image_url: str
    updated_at: datetime


class ProductCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Text
    category: Text
    price: RupeesInput
    unit: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=40)]
    stock: Stock = 0
    description: Annotated[str, StringConstraints(max_length=500)] = ""
    sku: Sku | None = None


class ProductUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Text | None = None
    category: Text | None = None
    price: RupeesInput | None = None
    unit: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=40)] | None = None
    stock: Stock | None = None
    description: Annotated[str, StringConstraints(max_length=500)] | None = None


class Category(BaseModel):
    name: str
    count: int
    image_url: str


class ReservationLine(BaseModel):
    product_id: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    quantity: Annotated[int, Field(ge=1, le=1000, strict=True)]


class ReservationRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    order_id: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    items: Annotated[list[ReservationLine], Field(min_length=1, max_length=100)]


class Reservation(BaseModel):
    order_id: str
    status: str
    items: list[ReservationLine]
