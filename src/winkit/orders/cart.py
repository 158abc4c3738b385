"""The shopper's cart: names and prices come from the catalog, never from the client."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from winkit.core.errors import Conflict, NotFound
from winkit.core.ids import MAX_ORDER_LINES
from winkit.orders.catalog_client import CatalogClient, CatalogProduct
from winkit.orders.models import CartItem, PricedCart
from winkit.orders.pricing import FeeRule, totals
from winkit.orders.schemas import MAX_LINE_QUANTITY
from winkit.orders.store import LineLimit, OrdersStore


def _not_enough(name: str, stock: int, in_cart: int) -> str:
    if stock == 0:
        return f"{name} is out of stock."
    already = f" You have {in_cart} in your cart." if in_cart else ""
    return f"Only {stock} of {name} left.{already}"


class CartService:
    def __init__(self, store: OrdersStore, catalog: CatalogClient, rule: FeeRule) -> None:
        self._store = store
        self._catalog = catalog
        self._rule = rule

    async def view(self, user_id: str) -> PricedCart:
        return await self._priced_now(user_id, await self._store.cart_items(user_id), {})

    async def _priced_now(self, user_id: str, items: list[CartItem], known: dict[str, CatalogProduct]) -> PricedCart:
        """``items`` at the catalog's names and prices of now, with what is in stock; ``known``
        holds products just read from the catalog, not asked for again. What is shown is
        stored: checkout charges exactly the prices the shopper last saw."""
        unknown = [item.product_id for item in items if item.product_id not in known]
        products = {**known, **(await self._catalog.products(unknown) if unknown else {})}
        shown, repriced, in_stock = [], [], {}
        for item in items:
            product = products.get(item.product_id)
            in_stock[item.product_id] = product.stock if product else 0  # 0: no longer sold
            if product and (product.name, product.price_paise) != (item.name, item.price_paise):
                item = item.model_copy(update={"name": product.name, "price_paise": product.price_paise})
                repriced.append(item)
            shown.append(item)
        await asyncio.gather(*(self._store.refresh_item(item) for item in repriced))
        return PricedCart(
            user_id=user_id,
            items=shown,
            in_stock=in_stock,
            totals=totals(shown, self._rule),
            free_delivery_from_paise=self._rule.free_from_paise,
        )

    async def add(self, user_id: str, product_id: str, quantity: int) -> PricedCart:
        product, items = await asyncio.gather(self._catalog.product(product_id), self._store.cart_items(user_id))
        current = next((item for item in items if item.product_id == product_id), None)
        in_cart = current.quantity if current else 0
        if quantity + in_cart > product.stock:
            raise Conflict(
                _not_enough(product.name, product.stock, in_cart), product_id=product_id, available=product.stock
            )
        if current is None and len(items) >= MAX_ORDER_LINES:
            raise Conflict(f"A cart holds at most {MAX_ORDER_LINES} different products; order these first.")
        added = CartItem(
            user_id=user_id,
            product_id=product_id,
            name=product.name,
            price_paise=product.price_paise,
            quantity=quantity,
            added_at=datetime.now(UTC),
        )
        try:
            await self._store.add_to_cart(added, MAX_LINE_QUANTITY)
        except LineLimit:
            raise Conflict(f"A cart line holds at most {MAX_LINE_QUANTITY} of one product.") from None
        # The cart as just written, not read again; only the other lines' products are asked for.
        if current is None:
            items.append(added)
        else:
            grown = current.model_copy(
                update={"name": added.name, "price_paise": added.price_paise, "quantity": in_cart + quantity}
            )
            items = [grown if item is current else item for item in items]
        return await self._priced_now(user_id, items, {product_id: product})

    async def remove(self, user_id: str, product_id: str, quantity: int | None) -> PricedCart:
        if not await self._store.reduce_line(user_id, product_id, quantity):
            raise NotFound(f"Product {product_id!r} is not in the cart.")
        return await self.view(user_id)
