"""Stock reservations for checkout: all lines or none, never below zero, given back on
cancellation. Every stock change is announced as a ``stock.changed`` event.

Reservations are keyed by order id, so repeating a reserve or release changes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal

import structlog
from pydantic import BaseModel

from winkit.catalog.models import CONFIRMED, RELEASED, RESERVED, ProductRecord, ReservedLine, StockReservation
from winkit.catalog.read_model import CatalogReadModel
from winkit.catalog.schemas import ReservationLine
from winkit.catalog.store import CatalogStore, ReservationExists
from winkit.core.errors import Conflict, OutOfStock, PricesChanged
from winkit.core.event_contracts import OrderCancelled, OrderCreated, StockChanged
from winkit.core.money import to_rupees

log = structlog.get_logger("winkit.stock")


def _available(product: ProductRecord | None) -> int:
    return 0 if product is None or product.deleted_at else product.stock


def _repriced(line: ReservedLine, product: ProductRecord | None) -> bool:
    """Refused for its price: still sold, but no longer at the price the shopper saw."""
    shown = line.price_paise
    return shown is not None and product is not None and not product.deleted_at and product.price_paise != shown


class RefusedLine(BaseModel):
    """A line the reservation could not take, as the shopper needs it: what it is, what
    was asked, what there is; and, when the shopper was shown a price, that and the price now."""

    product_id: str
    name: str
    requested: int
    available: int
    shown_price: Decimal | None = None
    price: Decimal | None = None


def _described(lines: list[ReservedLine], found: dict[str, ProductRecord]) -> list[RefusedLine]:
    described = []
    for line in lines:
        product = found.get(line.product_id)
        refused = RefusedLine(
            product_id=line.product_id,
            name=product.name if product else "An item no longer sold",
            requested=line.quantity,
            available=_available(product),
        )
        if product is not None and line.price_paise is not None:
            refused.shown_price = to_rupees(line.price_paise)
            refused.price = to_rupees(product.price_paise)
        described.append(refused)
    return described


def _shortage_text(short: list[RefusedLine]) -> str:
    parts = [
        f"{line.name} is out of stock" if line.available == 0 else f"only {line.available} of {line.name} left"
        for line in short
    ]
    return "Not enough stock: " + "; ".join(parts) + "."


class Refused(Exception):
    """Lines the reservation could not take: short of stock, or priced otherwise than shown."""

    def __init__(self, short: list[RefusedLine], repriced: list[RefusedLine]) -> None:
        super().__init__("refused")
        self.short = short
        self.repriced = repriced


def _refusal(refused: Refused) -> Conflict:
    if refused.repriced:
        names = ", ".join(line.name for line in refused.repriced)
        return PricesChanged(
            f"Prices changed since you saw them: {names}. Check the new prices and order again.",
            changed_items=[line.model_dump(exclude_none=True) for line in refused.repriced],
        )
    short_items = [line.model_dump(exclude_none=True) for line in refused.short]
    return OutOfStock(_shortage_text(refused.short), short_items=short_items)


class Stock:
    """Stock changes made here show at once in this replica's read model (a shopper reads
    their own checkout); other replicas learn of them from ``stock.changed``."""

    def __init__(self, store: CatalogStore, read_model: CatalogReadModel) -> None:
        self._store = store
        self._read_model = read_model

    def _show(self, products: list[ProductRecord]) -> None:
        for product in products:
            self._read_model.apply(product)

    async def reserve(self, order_id: str, lines: Sequence[ReservationLine]) -> StockReservation:
        existing = await self._store.reservation(order_id)
        if existing is None:
            items = [
                ReservedLine(product_id=line.product_id, quantity=line.quantity, price_paise=line.price_paise)
                for line in lines
            ]
            try:
                taken = await self._store.atomically(lambda: self._take_all(order_id, items))
            except Refused as refused:
                problem = _refusal(refused)
                log.info("reservation_refused", order_id=order_id, reason=problem.slug, lines=len(items))
                raise problem from None
            except ReservationExists:
                pass  # the same order reserved concurrently: report what was stored
            else:
                self._show(taken)
            existing = await self._store.reservation(order_id)
        assert existing is not None
        if existing.status == RELEASED:
            raise Conflict("This order's reservation was already released.")
        return existing

    async def _take_all(self, order_id: str, items: list[ReservedLine]) -> list[ProductRecord]:
        """Take every line's stock; the products as they are after."""
        now = datetime.now(UTC)
        await self._store.insert_reservation(
            StockReservation(order_id=order_id, items=items, status=RESERVED, created_at=now, updated_at=now)
        )
        refused, taken, events = [], [], []
        # A fixed order of products keeps concurrent checkouts from deadlocking each other.
        for line in sorted(items, key=lambda i: i.product_id):
            product = await self._store.take_stock(line.product_id, line.quantity, line.price_paise)
            if product is None:
                refused.append(line)
            else:
                taken.append(product)
                events.append(
                    StockChanged(
                        product_id=line.product_id,
                        stock=product.stock,
                        delta=-line.quantity,
                        reason="reserved",
                        order_id=order_id,
                    )
                )
        if refused:
            # Read in this unit of work: what made the lines fail is what the answer says.
            found = {str(p.id): p for p in await self._store.products_by_ids([i.product_id for i in refused])}
            repriced = [i for i in refused if _repriced(i, found.get(i.product_id))]
            short = [i for i in refused if i not in repriced]
            raise Refused(_described(short, found), _described(repriced, found))  # aborts: nothing was taken
        await self._store.announce(*events)
        return taken

    async def release(self, order_id: str) -> StockReservation:
        given_back = await self._store.atomically(lambda: self._give_back(order_id))
        self._show(given_back)
        released = await self._store.reservation(order_id)
        assert released is not None
        log.info("stock_released", order_id=order_id, lines=len(released.items))
        return released

    async def release_for(self, cancelled: OrderCancelled) -> None:
        """Give a cancelled order's stock back. It runs in the unit of work recording the
        event handled, so read models (this replica's too) learn of it from ``stock.changed``."""
        await self._store.atomically(lambda: self._give_back(cancelled.order_id))

    async def _give_back(self, order_id: str) -> list[ProductRecord]:
        """Give a reservation's stock back, once; a release before any reserve leaves a
        marker so a late reserve for the same order cannot take stock afterwards. The
        products given stock back, as they are after."""
        now = datetime.now(UTC)
        reservation = await self._store.move_reservation(order_id, [RESERVED, CONFIRMED], RELEASED, now)
        if reservation is None:
            await self._store.insert_released_marker(StockReservation.released_marker(order_id, now))
            return []
        given_back, events = [], []
        for line in reservation.items:
            product = await self._store.give_back_stock(line.product_id, line.quantity)
            if product is not None:
                given_back.append(product)
                events.append(
                    StockChanged(
                        product_id=line.product_id,
                        stock=product.stock,
                        delta=line.quantity,
                        reason="released",
                        order_id=order_id,
                    )
                )
        await self._store.announce(*events)
        return given_back

    async def confirm(self, created: OrderCreated) -> None:
        """Mark a placed order's reservation confirmed; a cancellation still gives it back."""
        await self._store.move_reservation(created.order_id, [RESERVED], CONFIRMED, datetime.now(UTC))
