"""Stock reservations for checkout: all lines or none, never below zero, given back on
cancellation. Every stock change is announced as a ``stock.changed`` event.

Reservations are keyed by order id, so repeating a reserve or release changes nothing.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import structlog
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.errors import DuplicateKeyError

from winkit.catalog.read_model import CatalogReadModel
from winkit.catalog.store import CatalogStore
from winkit.core.database import Document
from winkit.core.errors import Conflict, OutOfStock, PricesChanged
from winkit.core.event_contracts import StockChanged
from winkit.core.money import to_rupees
from winkit.core.outbox import Outbox, new_event, transact

log = structlog.get_logger("winkit.stock")

RESERVED, CONFIRMED, RELEASED = "reserved", "confirmed", "released"
STOCK_CHANGED = StockChanged.TYPE


def _available(product: dict[str, Any] | None) -> int:
    return 0 if product is None or product.get("deleted_at") else int(product["stock"])


def _repriced(item: dict[str, Any], product: dict[str, Any] | None) -> bool:
    """Refused for its price: still sold, but no longer at the price the shopper saw."""
    shown = item.get("price_paise")
    return (
        shown is not None and product is not None and not product.get("deleted_at") and product["price_paise"] != shown
    )


def _described(items: list[dict[str, Any]], found: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Each refused line as the shopper needs it: what it is, what was asked, what there is."""
    described = []
    for item in items:
        product = found.get(item["product_id"])
        line = {
            "product_id": item["product_id"],
            "name": product["name"] if product else "An item no longer sold",
            "requested": item["quantity"],
            "available": _available(product),
        }
        if product is not None and item.get("price_paise") is not None:
            line["shown_price"] = to_rupees(item["price_paise"])
            line["price"] = to_rupees(product["price_paise"])
        described.append(line)
    return described


def _shortage_text(short: list[dict[str, Any]]) -> str:
    parts = [
        f"{item['name']} is out of stock"
        if item["available"] == 0
        else f"only {item['available']} of {item['name']} left"
        for item in short
    ]
    return "Not enough stock: " + "; ".join(parts) + "."


class Refused(Exception):
    """Lines the reservation could not take: short of stock, or priced otherwise than shown."""

    def __init__(self, short: list[dict[str, Any]], repriced: list[dict[str, Any]]) -> None:
        super().__init__("refused")
        self.short = short
        self.repriced = repriced


def stock_changed(product_id: str, stock: int, delta: int, reason: str, order_id: str | None) -> dict[str, Any]:
    data = StockChanged(product_id=product_id, stock=stock, delta=delta, reason=reason, order_id=order_id)
    return new_event(data, "catalog")


def _refusal(refused: Refused) -> Conflict:
    if refused.repriced:
        names = ", ".join(item["name"] for item in refused.repriced)
        return PricesChanged(
            f"Prices changed since you saw them: {names}. Check the new prices and order again.",
            changed_items=refused.repriced,
        )
    return OutOfStock(_shortage_text(refused.short), short_items=refused.short)


class Stock:
    """Stock changes made here show at once in this replica's read model (a shopper reads
    their own checkout); other replicas learn of them from ``stock.changed``."""

    def __init__(self, store: CatalogStore, outbox: Outbox, read_model: CatalogReadModel) -> None:
        self._store = store
        self._outbox = outbox
        self._read_model = read_model

    async def reserve(self, order_id: str, items: list[dict[str, Any]]) -> dict[str, Any]:
        existing = await self._store.reservation(order_id)
        if existing is None:
            try:
                taken = await transact(self._store.db, self._outbox, lambda s: self._take_all(s, order_id, items))
            except Refused as refused:
                problem = _refusal(refused)
                log.info("reservation_refused", order_id=order_id, reason=problem.slug, lines=len(items))
                raise problem from None
            except DuplicateKeyError:
                pass  # the same order reserved concurrently: report what was stored
            else:
                for product in taken:
                    self._read_model.apply(product)
            existing = await self._store.reservation(order_id)
        assert existing is not None
        if existing["status"] == RELEASED:
            raise Conflict("This order's reservation was already released.")
        return {"order_id": order_id, "status": existing["status"], "items": existing["items"]}

    async def _take_all(
        self, session: AsyncClientSession, order_id: str, items: list[dict[str, Any]]
    ) -> list[Document]:
        """Take every line's stock; the products as they are after."""
        now = datetime.now(UTC)
        await self._store.insert_reservation(
            session, {"_id": order_id, "items": items, "status": RESERVED, "created_at": now, "updated_at": now}
        )
        refused, taken, events = [], [], []
        # A fixed order of products keeps concurrent checkouts from deadlocking each other.
        for item in sorted(items, key=lambda i: i["product_id"]):
            price = item.get("price_paise")
            product = await self._store.take_stock(session, item["product_id"], item["quantity"], price)
            if product is None:
                refused.append(item)
            else:
                taken.append(product)
                events.append(
                    stock_changed(item["product_id"], product["stock"], -item["quantity"], "reserved", order_id)
                )
        if refused:
            # Read in this transaction: what made the lines fail is what the answer says.
            found = {
                str(p["_id"]): p
                for p in await self._store.products_by_ids([i["product_id"] for i in refused], session=session)
            }
            repriced = [i for i in refused if _repriced(i, found.get(i["product_id"]))]
            short = [i for i in refused if i not in repriced]
            raise Refused(_described(short, found), _described(repriced, found))  # aborts: nothing was taken
        await self._outbox.add(session, *events)
        return taken

    async def release(self, order_id: str) -> dict[str, Any]:
        given_back = await transact(self._store.db, self._outbox, lambda s: self.release_in(s, order_id))
        for product in given_back:
            self._read_model.apply(product)
        released = await self._store.reservation(order_id)
        assert released is not None
        log.info("stock_released", order_id=order_id, lines=len(released["items"]))
        return {"order_id": order_id, "status": released["status"], "items": released["items"]}

    async def release_in(self, session: AsyncClientSession, order_id: str) -> list[Document]:
        """Give a reservation's stock back, once; a release before any reserve leaves a
        marker so a late reserve for the same order cannot take stock afterwards. The
        products given stock back, as they are after."""
        now = datetime.now(UTC)
        reservation = await self._store.move_reservation(
            session, order_id, [RESERVED, CONFIRMED], {"status": RELEASED, "updated_at": now}
        )
        if reservation is None:
            marker = {"_id": order_id, "items": [], "status": RELEASED, "created_at": now, "updated_at": now}
            await self._store.insert_released_marker(session, marker)
            return []
        given_back, events = [], []
        for item in reservation["items"]:
            product = await self._store.give_back_stock(session, item["product_id"], item["quantity"])
            if product is not None:
                given_back.append(product)
                events.append(
                    stock_changed(item["product_id"], product["stock"], item["quantity"], "released", order_id)
                )
        await self._outbox.add(session, *events)
        return given_back

    async def confirm_in(self, session: AsyncClientSession, order_id: str) -> None:
        await self._store.move_reservation(
            session, order_id, [RESERVED], {"status": CONFIRMED, "updated_at": datetime.now(UTC)}
        )
