"""Stock reservations for checkout: all lines or none, never below zero, given back on
cancellation. Every stock change is announced as a ``stock.changed`` event.

Reservations are keyed by order id, so repeating a reserve or release changes nothing.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.errors import DuplicateKeyError

from winkit.catalog.store import CatalogStore
from winkit.platform.errors import Conflict
from winkit.platform.events import Outbox, new_event, transact

RESERVED, CONFIRMED, RELEASED = "reserved", "confirmed", "released"


class Shortage(Exception):
    def __init__(self, items: list[dict[str, Any]]) -> None:
        super().__init__("short")
        self.items = items


def stock_changed(product_id: str, stock: int, delta: int, reason: str, order_id: str | None) -> dict[str, Any]:
    data = {"product_id": product_id, "stock": stock, "delta": delta, "reason": reason, "order_id": order_id}
    return new_event("stock.changed", "catalog", data)


class Stock:
    def __init__(self, store: CatalogStore, outbox: Outbox) -> None:
        self._store = store
        self._outbox = outbox

    async def reserve(self, order_id: str, items: list[dict[str, Any]]) -> dict[str, Any]:
        existing = await self._store.reservation(order_id)
        if existing is None:
            try:
                await transact(self._store.db, self._outbox, lambda s: self._take_all(s, order_id, items))
            except Shortage as short:
                described = await self._describe(short.items)
                names = ", ".join(item["name"] for item in described)
                raise Conflict(f"Not enough stock for: {names}.", short_items=described) from None
            except DuplicateKeyError:
                pass  # the same order reserved concurrently: report what was stored
            existing = await self._store.reservation(order_id)
        assert existing is not None
        if existing["status"] == RELEASED:
            raise Conflict("This order's reservation was already released.")
        return {"order_id": order_id, "status": existing["status"], "items": existing["items"]}

    async def _take_all(self, session: AsyncClientSession, order_id: str, items: list[dict[str, Any]]) -> None:
        now = datetime.now(UTC)
        await self._store.insert_reservation(
            session, {"_id": order_id, "items": items, "status": RESERVED, "created_at": now, "updated_at": now}
        )
        short, events = [], []
        # A fixed order of products keeps concurrent checkouts from deadlocking each other.
        for item in sorted(items, key=lambda i: i["product_id"]):
            stock = await self._store.take_stock(session, item["product_id"], item["quantity"])
            if stock is None:
                short.append(item)
            else:
                events.append(stock_changed(item["product_id"], stock, -item["quantity"], "reserved", order_id))
        if short:
            raise Shortage(short)  # aborts the transaction: nothing was taken
        await self._outbox.add(session, *events)

    async def _describe(self, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        found = {str(p["_id"]): p for p in await self._store.products_by_ids([i["product_id"] for i in items])}
        described = []
        for item in items:
            product = found.get(item["product_id"])
            available = 0 if product is None or product.get("deleted_at") else int(product["stock"])
            described.append(
                {
                    "product_id": item["product_id"],
                    "name": product["name"] if product else "unknown product",
                    "requested": item["quantity"],
                    "available": available,
                }
            )
        return described

    async def release(self, order_id: str) -> dict[str, Any]:
        await transact(self._store.db, self._outbox, lambda s: self.release_in(s, order_id))
        released = await self._store.reservation(order_id)
        assert released is not None
        return {"order_id": order_id, "status": released["status"], "items": released["items"]}

    async def release_in(self, session: AsyncClientSession, order_id: str) -> None:
        """Give a reservation's stock back, once; a release before any reserve leaves a
        marker so a late reserve for the same order cannot take stock afterwards."""
        now = datetime.now(UTC)
        reservation = await self._store.move_reservation(
            session, order_id, [RESERVED, CONFIRMED], {"status": RELEASED, "updated_at": now}
        )
        if reservation is None:
            marker = {"_id": order_id, "items": [], "status": RELEASED, "created_at": now, "updated_at": now}
            await self._store.insert_released_marker(session, marker)
            return
        events = []
        for item in reservation["items"]:
            stock = await self._store.give_back_stock(session, item["product_id"], item["quantity"])
            if stock is not None:
                events.append(stock_changed(item["product_id"], stock, item["quantity"], "released", order_id))
        await self._outbox.add(session, *events)

    async def confirm_in(self, session: AsyncClientSession, order_id: str) -> None:
        await self._store.move_reservation(
            session, order_id, [RESERVED], {"status": CONFIRMED, "updated_at": datetime.now(UTC)}
        )
