"""The cart & order service's API contract; answers build themselves from the domain's
models (``of``), showing paise as rupees."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Self

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator
from pydantic_core import PydanticCustomError

from winkit.core.address import DeliveryAddress, ShippingAddress
from winkit.core.event_contracts import OrderedItem
from winkit.core.ids import EntityId
from winkit.core.money import CURRENCY, Rupees, to_rupees
from winkit.orders.models import CartItem, OrderRecord, PricedCart
from winkit.orders.pricing import line_total

Quantity = Annotated[int, Field(ge=1, le=20, strict=True)]
UserId = Annotated[str | None, Field(max_length=64, description="Optional; must be the caller's own id")]
MAX_LINE_QUANTITY = 20


class CartAdd(BaseModel):
    # Anything else (a client-sent price, say) is refused, never trusted.
    model_config = ConfigDict(extra="forbid")

    product_id: EntityId
    quantity: Quantity = 1
    user_id: UserId = None


class CartRemove(BaseModel):
    model_config = ConfigDict(extra="forbid")

    product_id: EntityId
    quantity: Quantity | None = None
    user_id: UserId = None


class Line(BaseModel):
    product_id: str
    name: str
    price: Rupees
    quantity: int
    line_total: Rupees

    @classmethod
    def of(cls, item: OrderedItem | CartItem) -> Self:
        return cls(
            product_id=item.product_id,
            name=item.name,
            price=to_rupees(item.price_paise),
            quantity=item.quantity,
            line_total=to_rupees(line_total(item.price_paise, item.quantity)),
        )


class CartLine(Line):
    in_stock: int = Field(description="How many the catalog has right now (0: sold out or no longer sold)")

    @classmethod
    def in_cart(cls, item: CartItem, in_stock: int) -> CartLine:
        return cls(**dict(Line.of(item)), in_stock=in_stock)


class Cart(BaseModel):
    user_id: str
    items: list[CartLine]
    subtotal: Rupees
    delivery_fee: Rupees
    total: Rupees
    currency: str
    free_delivery_from: Rupees = Field(description="From this subtotal on, delivery is free")

    @classmethod
    def of(cls, cart: PricedCart) -> Cart:
        return cls(
            user_id=cart.user_id,
            items=[CartLine.in_cart(item, cart.in_stock[item.product_id]) for item in cart.items],
            subtotal=to_rupees(cart.totals.subtotal_paise),
            delivery_fee=to_rupees(cart.totals.delivery_fee_paise),
            total=to_rupees(cart.totals.total_paise),
            currency=CURRENCY,
            free_delivery_from=to_rupees(cart.free_delivery_from_paise),
        )


class OrderCreate(BaseModel):
    model_config = ConfigDict(extra="ignore")  # totals or items sent by old clients are ignored

    address_id: Annotated[str, StringConstraints(min_length=1, max_length=64)] | None = Field(
        default=None, description="One of the shopper's saved addresses (user service, /addresses)"
    )
    address: DeliveryAddress | None = Field(default=None, description="Or a new address, for this order only")
    note: Annotated[str, StringConstraints(max_length=500)] | None = None
    user_id: UserId = None

    @model_validator(mode="after")
    def one_destination(self) -> OrderCreate:
        if (self.address_id is None) == (self.address is None):
            raise PydanticCustomError(
                "address_required", "Choose where to deliver: send either address_id (a saved address) or address."
            )
        return self


class Order(BaseModel):
    order_id: str
    user_id: str
    status: str
    items: list[Line]
    subtotal: Rupees
    delivery_fee: Rupees
    total: Rupees
    currency: str
    address: ShippingAddress | None
    note: str | None
    created_at: datetime
    updated_at: datetime
    promised_at: datetime | None = Field(description="When the order is promised to arrive (placed + the promise)")

    @classmethod
    def of(cls, order: OrderRecord) -> Order:
        # The totals computed when it was placed, whatever the fee rule is now.
        return cls(
            order_id=str(order.id),
            user_id=order.user_id,
            status=order.status,
            items=[Line.of(item) for item in order.items],
            subtotal=to_rupees(order.subtotal_paise),
            delivery_fee=to_rupees(order.delivery_fee_paise),
            total=to_rupees(order.total_paise),
            currency=CURRENCY,
            address=order.address,
            note=order.note,
            created_at=order.created_at,
            updated_at=order.updated_at,
            promised_at=order.promised_at,
        )
