"""The catalog service's API contract; answers build themselves from the stored models."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints
from pydantic_core import PydanticCustomError

from winkit.catalog.models import ProductRecord, StockReservation
from winkit.core.ids import MAX_ORDER_LINES, EntityId, is_canonical
from winkit.core.money import Rupees, RupeesInput, to_rupees

Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=120)]


def _sku(value: str) -> str:
    if not re.fullmatch(r"[a-z0-9][a-z0-9-]{1,80}", value):
        raise PydanticCustomError(
            "sku", "Use 2 to 81 lower-case letters, digits and dashes, starting with a letter or digit."
        )
    return value


Sku = Annotated[str, StringConstraints(max_length=81), AfterValidator(_sku)]
Stock = Annotated[int, Field(ge=0, le=100_000, strict=True)]


def _id_list(value: str | None) -> str | None:
    if value is not None and not all(is_canonical(part) for part in value.split(",")):
        raise PydanticCustomError("ids", "Give product ids (24 lower-case hexadecimal characters), comma-separated.")
    return value


class ProductQuery(BaseModel):
    # Unknown parameters (e.g. category[$ne]) are refused rather than silently ignored.
    model_config = ConfigDict(extra="forbid")

    category: Annotated[str | None, Field(max_length=120)] = None
    q: Annotated[str | None, Field(max_length=100, description="Case-insensitive name search")] = None
    ids: Annotated[
        str | None,
        Field(
            max_length=MAX_ORDER_LINES * 25,
            description=f"Only these products: up to {MAX_ORDER_LINES} ids, comma-separated",
        ),
        AfterValidator(_id_list),
    ] = None
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

    @classmethod
    def of(cls, product: ProductRecord, image_url: str) -> Product:
        return cls(
            id=str(product.id),
            sku=product.sku,
            name=product.name,
            category=product.category,
            price=to_rupees(product.price_paise),
            price_paise=product.price_paise,
            currency=product.currency,
            unit=product.unit,
            stock=product.stock,
            description=product.description,
            image_url=image_url,
            updated_at=product.updated_at,
        )


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
    product_id: EntityId
    quantity: Annotated[int, Field(ge=1, le=1000, strict=True)]
    price_paise: int | None = Field(
        default=None, ge=0, description="The price the shopper was shown: a different current price refuses the line"
    )


class ReservationRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    order_id: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    items: Annotated[list[ReservationLine], Field(min_length=1, max_length=MAX_ORDER_LINES)]


class Reservation(BaseModel):
    order_id: str
    status: str
    items: list[ReservationLine]

    @classmethod
    def of(cls, reservation: StockReservation) -> Reservation:
        items = [
            ReservationLine(product_id=line.product_id, quantity=line.quantity, price_paise=line.price_paise)
            for line in reservation.items
        ]
        return cls(order_id=reservation.order_id, status=reservation.status, items=items)
