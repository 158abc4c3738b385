"""The shopper's cart: names and prices come from the catalog, never from the client."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from winkit.core.database import Document
from winkit.core.errors import Conflict, NotFound
from winkit.core.ids import MAX_ORDER_LINES
from winkit.core.money import CURRENCY, to_rupees
from winkit.orders.catalog_client import CatalogClient
from winkit.orders.pricing import FeeRule, line_total, totals
from winkit.orders.schemas import MAX_LINE_QUANTITY
from winkit.orders.store import LineLimit, OrdersStore


def line_view(line: Document) -> dict[str, Any]:
    view = {
        "product_id": line["product_id"],
        "name": line["name"],
        "price": to_rupees(line["price_paise"]),
        "quantity": line["quantity"],
        "line_total": to_rupees(line_total(line["price_paise"], line["quantity"])),
    }
    if "in_stock" in line:  # a cart line, read against the catalog just now
        view["in_stock"] = line["in_stock"]
    return view


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

    async def view(self, user_id: str) -> dict[str, Any]:
        return self._view(user_id, await self._priced_now(user_id, await self._store.cart_lines(user_id), {}))

    def _view(self, user_id: str, lines: list[Document]) -> dict[str, Any]:
        return {
            "user_id": user_id,
            **priced(lines, self._rule),
            "free_delivery_from": to_rupees(self._rule.free_from_paise),
        }

    async def _priced_now(
        self, user_id: str, lines: list[Document], known: dict[str, dict[str, Any]]
    ) -> list[Document]:
        """``lines`` at the catalog's names and prices of now, each with what is in stock;
        ``known`` holds products just read from the catalog, not asked for again. What is
        shown is stored: checkout charges exactly the prices the shopper last saw."""
        unknown = [line["product_id"] for line in lines if line["product_id"] not in known]
        products = {**known, **(await self._catalog.products(unknown) if unknown else {})}
        repriced = []
        for line in lines:
            product = products.get(line["product_id"])
            line["in_stock"] = product["stock"] if product else 0  # 0: no longer sold
            if product and (product["name"], product["price_paise"]) != (line["name"], line["price_paise"]):
                line.update(name=product["name"], price_paise=product["price_paise"])
                repriced.append(line)
        await asyncio.gather(
            *(self._store.refresh_line(user_id, x["product_id"], x["name"], x["price_paise"]) for x in repriced)
        )
        return lines

    async def add(self, user_id: str, product_id: str, quantity: int) -> dict[str, Any]:
        product, lines = await asyncio.gather(self._catalog.product(product_id), self._store.cart_lines(user_id))
        current = next((line for line in lines if line["product_id"] == product_id), None)
        in_cart = current["quantity"] if current else 0
        if quantity + in_cart > product["stock"]:
            raise Conflict(
                _not_enough(product["name"], product["stock"], in_cart),
                product_id=product_id,
                available=product["stock"],
            )
        if current is None and len(lines) >= MAX_ORDER_LINES:
            raise Conflict(f"A cart holds at most {MAX_ORDER_LINES} different products; order these first.")
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
        # The cart as just written, not read again; only the other lines' products are asked for.
        if current is None:
            lines.append({**line, "quantity": quantity})
        else:
            current.update(name=product["name"], price_paise=product["price_paise"], quantity=in_cart + quantity)
        return self._view(user_id, await self._priced_now(user_id, lines, {product_id: product}))

    async def remove(self, user_id: str, product_id: str, quantity: int | None) -> dict[str, Any]:
        if not await self._store.reduce_line(user_id, product_id, quantity):
            raise NotFound(f"Product {product_id!r} is not in the cart.")
        return await self.view(user_id)
