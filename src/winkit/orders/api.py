"""Cart & order routes: thin, they check the caller and hand over to the domain."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query, Response

from winkit.core.auth import CurrentPrincipal, ensure_self
from winkit.core.service import from_state
from winkit.orders.cart import CartService
from winkit.orders.ordering import Orders
from winkit.orders.schemas import Cart, CartAdd, CartRemove, Order, OrderCreate, UserId

router = APIRouter()


CartDep = Annotated[CartService, Depends(from_state("cart", CartService))]
OrdersDep = Annotated[Orders, Depends(from_state("orders", Orders))]
UserIdQuery = Annotated[UserId, Query()]
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        max_length=200,
        description="Repeat a checkout safely: the same key returns the same order.",
    ),
]


@router.get("/cart", response_model=Cart, tags=["cart"])
async def get_cart(principal: CurrentPrincipal, cart: CartDep, user_id: UserIdQuery = None) -> Cart:
    ensure_self(principal, user_id)
    return Cart.of(await cart.view(principal.user_id))


@router.post("/cart/add", response_model=Cart, tags=["cart"])
async def add_to_cart(body: CartAdd, principal: CurrentPrincipal, cart: CartDep) -> Cart:
    """Add a product (1 to 20 per line); name and price come from the catalog."""
    ensure_self(principal, body.user_id)
    return Cart.of(await cart.add(principal.user_id, body.product_id, body.quantity))


@router.post("/cart/remove", response_model=Cart, tags=["cart"])
async def remove_from_cart(body: CartRemove, principal: CurrentPrincipal, cart: CartDep) -> Cart:
    """Take some of a line away, or the whole line when no quantity is given."""
    ensure_self(principal, body.user_id)
    return Cart.of(await cart.remove(principal.user_id, body.product_id, body.quantity))


@router.post("/order/create", status_code=201, response_model=Order, tags=["orders"])
async def create_order(
    body: OrderCreate,
    response: Response,
    principal: CurrentPrincipal,
    orders: OrdersDep,
    idempotency_key: IdempotencyKey = None,
) -> Order:
    """Place the cart as an order to a saved address (``address_id``) or a new one
    (``address``); totals are the server's. 409 when stock is short or the cart empty."""
    ensure_self(principal, body.user_id)
    order, replayed = await orders.place(
        principal, idempotency_key, address_id=body.address_id, address=body.address, note=body.note
    )
    if replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return Order.of(order)


@router.get("/orders", response_model=list[Order], tags=["orders"])
async def list_orders(principal: CurrentPrincipal, orders: OrdersDep, user_id: UserIdQuery = None) -> list[Order]:
    """The caller's orders, newest first, each with its current delivery status."""
    ensure_self(principal, user_id)
    return [Order.of(order) for order in await orders.history(principal.user_id)]


@router.get("/orders/{order_id}", response_model=Order, tags=["orders"])
async def get_order(order_id: str, principal: CurrentPrincipal, orders: OrdersDep) -> Order:
    return Order.of(await orders.get(principal, order_id))


@router.post("/orders/{order_id}/cancel", response_model=Order, tags=["orders"])
async def cancel_order(order_id: str, principal: CurrentPrincipal, orders: OrdersDep) -> Order:
    """The owner cancels while the order is PLACED or CONFIRMED; the stock goes back."""
    return Order.of(await orders.cancel(principal, order_id))
