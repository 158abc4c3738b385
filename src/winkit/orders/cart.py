"""The shopper's cart: names and prices come from the catalog, never from the client."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from winkit.orders.catalog_client import CatalogClient
from winkit.orders.pricing import FeeRule, line_total, totals
from winkit.orders.schemas import MAX_LINE_QUANTITY
from winkit.orders.store import LineLimit, OrdersStore
from winkit.platform.database import Document
from winkit.platform.errors import Conflict, NotFound
from winkit.platform.money import CURRENCY, to_rupees


def line_view(line: Document) -> dict[str, Any]:
    return {
        "product_id": line["product_id"],
        "name": line["name"],
        "price": to_rupees(line["price_paise"]),
        "quantity": line["quantity"],
        "line_total": to_rupees(line_total(line["price_paise"], line["quantity"])),
    }


def priced(lines: list[Document], rule: FeeRule) -> dict[str, Any]:
    """Lines with their totals, as both the cart and an order show them."""
    sums = totals(lines, rule)
    return {
        "items": [line_view(line) for line in lines],
        "subtotal": to_rupees(sums.subtotal_paise),
        "delivery_fee": to_rupees(sums.delivery_fee_paise),
        "total": to_rupees(sums.total_paise),
        "currency": CURRENCY,
    }


class CartService:
    def __init__(self, store: OrdersStore, catalog: CatalogClient, rule: FeeRule) -> None:
        self._store = store
        self._catalog = catalog
        self._rule = rule

    async def view(self, user_id: str) -> dict[str, Any]:
        lines = await self._store.cart_lines(user_id)
        return {
            "user_id": user_id,
            **priced(lines, self._rule),
            "free_delivery_from": to_rupees(self._rule.free_from_paise),
        }

    async def add(self, user_id: str, product_id: str, quantity: int) -> dict[str, Any]:
        product = await self._catalog.product(product_id)
        current = await self._store.cart_line(user_id, product_id)
        wanted = quantity + (current["quantity"] if current else 0)
        if wanted > product["stock"]:
            raise Conflict(
                f"Only {product['stock']} of {product['name']} in stock.",
                product_id=product_id,
                available=product["stock"],
            )
        line = {
            "user_id": user_id,
            "product_id": product_id,
            "name": product["name"],
            "price_paise": product["price_paise"],
            "added_at": datetime.now(UTC),
        }
        try:
            await self._store.add_to_line(line, quantity, MAX_LINE_QUANTITY)
        except LineLimit:
            raise Conflict(f"A cart line holds at most {MAX_LINE_QUANTITY} of one product.") from None
        return await self.view(user_id)

    async def remove(self, user_id: str, product_id: str, quantity: int | None) -> dict[str, Any]:
        if not await self._store.reduce_line(user_id, product_id, quantity):
            raise NotFound(f"Product {product_id!r} is not in the cart.")
        return await self.view(user_id)
