"""Orders from checkout to the end: placing them (checkout), reading them (history, one
order), cancelling them, following their delivery, and recovering checkouts a crash left.

Placing an order: record it as PENDING, ask the catalog to reserve every line's stock
(all or nothing), then in one transaction mark it PLACED, empty those cart lines and
queue ``order.created``. A PENDING order left behind by a crash or an unreachable catalog
is taken over by ``recover_stale`` once older than the reservation timeout: marked
ABANDONED first (so a checkout still running cannot place it afterwards), then its stock
is released, then it is removed.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime, timedelta
from typing import Any

import pymongo
import structlog
from bson import ObjectId
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.errors import PyMongoError

from winkit.core.auth import Principal
from winkit.core.database import Document, stored_now
from winkit.core.errors import Conflict, NotFound, Problem, ServiceUnavailable
from winkit.core.event_contracts import DeliveryStatusChanged, OrderCancelled, OrderCreated
from winkit.core.ids import MAX_ORDER_LINES
from winkit.core.money import CURRENCY, to_rupees
from winkit.core.order_status import OrderStatus
from winkit.core.outbox import Outbox, new_event, transact
from winkit.orders.cart import line_view
from winkit.orders.catalog_client import CatalogClient
from winkit.orders.delivery_client import DeliveryClient
from winkit.orders.pricing import FeeRule, totals
from winkit.orders.store import CartBusy, DuplicateOrder, OrdersStore
from winkit.orders.users_client import UsersClient

log = structlog.get_logger("winkit.checkout")

PENDING = "PENDING"  # internal: stock being reserved; never shown to shoppers
ABANDONED = "ABANDONED"  # internal: a stale checkout whose stock is being given back
# Each step of taking over one stale checkout may wait this long: a write to an order that
# a crashed process left inside a transaction waits until the database reaps that
# transaction (60 s); meanwhile the other stale checkouts are taken over.
RECOVERY_STEP_SECONDS = 5.0
# Every status but the two internal ones above is one a shopper sees (OrderStatus).
VISIBLE = list(OrderStatus)
NOT_CANCELLED = [s for s in VISIBLE if s != OrderStatus.CANCELLED]


def order_view(order: Document) -> dict[str, Any]:
    # An order keeps the totals computed when it was placed, whatever the fee rule is now.
    return {
        "order_id": str(order["_id"]),
        "user_id": order["user_id"],
        "status": order["status"],
        "items": [line_view(item) for item in order["items"]],
        "subtotal": to_rupees(order["subtotal_paise"]),
        "delivery_fee": to_rupees(order["delivery_fee_paise"]),
        "total": to_rupees(order["total_paise"]),
        "currency": CURRENCY,
        "address": order.get("address"),
        "note": order.get("note"),
        "created_at": order["created_at"],
        "updated_at": order["updated_at"],
        "promised_at": order.get("promised_at"),
    }


def created_data(order: Document) -> OrderCreated:
    """The order as ``order.created`` announces it (and the delivery service records it)."""
    return OrderCreated(
        order_id=str(order["_id"]),
        user_id=order["user_id"],
        items=order["items"],
        total_paise=order["total_paise"],
        address=order.get("address"),
        created_at=order["created_at"].isoformat(),
        placed_at=order["placed_at"].isoformat() if order.get("placed_at") else None,
        promised_at=order["promised_at"].isoformat() if order.get("promised_at") else None,
    )


def order_cancelled(order: Document, by: str) -> Document:
    return new_event(OrderCancelled(order_id=str(order["_id"]), user_id=order["user_id"], by=by), "orders")


class Orders:
    """Every order operation of the orders service (the cart has its own module)."""

    def __init__(
        self,
        store: OrdersStore,
        outbox: Outbox,
        catalog: CatalogClient,
        users: UsersClient,
        delivery: DeliveryClient,
        rule: FeeRule,
        promise: timedelta,
        stale_after: timedelta,
    ) -> None:
        self._store = store
        self._outbox = outbox
        self._catalog = catalog
        self._users = users
        self._delivery = delivery
        self._rule = rule
        self._promise = promise
        # A checkout unfinished after this long was abandoned (a crash): its stock is
        # released and its hold on the cart lapses.
        self._stale_after = stale_after

    async def place(
        self,
        principal: Principal,
        idempotency_key: str | None,
        *,
        address_id: str | None,
        address: dict[str, Any] | None,
        note: str | None,
    ) -> tuple[dict[str, Any], bool]:
        """The placed order, and whether it was placed before (a replayed Idempotency-Key).
        The address is given, or one of the shopper's saved ones (``address_id``)."""
        user_id = principal.user_id
        order_id = ObjectId()
        key = f"key:{user_id}:{idempotency_key}" if idempotency_key else f"order:{order_id}"
        if idempotency_key and (existing := await self._store.order_by_key(key)):
            return self._replay(existing), True
        # One checkout of a cart at a time: a double click must not order the same lines twice.
        now = stored_now()
        try:
            await self._store.start_checkout(user_id, order_id, now, now - self._stale_after)
        except CartBusy:
            log.info("checkout_refused", reason="cart-busy", user_id=user_id)
            raise Conflict("This cart is being ordered right now; see your orders.") from None
        placed = False
        try:
            order, replayed = await self._place_held(principal, order_id, key, address_id, address, note)
            placed = not replayed
        except Problem as refused:
            log.info("checkout_refused", reason=refused.slug, status=refused.status, user_id=user_id)
            raise
        finally:
            # Placing ends the hold in its own transaction; this ends it otherwise.
            if not placed:
                await self._store.end_checkout(user_id, order_id)
        if not replayed:
            log.info("order_placed", order_id=order["order_id"], lines=len(order["items"]), total=str(order["total"]))
        return order, replayed

    async def _place_held(
        self,
        principal: Principal,
        order_id: ObjectId,
        key: str,
        address_id: str | None,
        address: dict[str, Any] | None,
        note: str | None,
    ) -> tuple[dict[str, Any], bool]:
        user_id = principal.user_id
        if address is None:
            assert address_id is not None
            lines, address = await asyncio.gather(
                self._store.cart_lines(user_id), self._users.saved_address(principal, address_id)
            )
        else:
            lines = await self._store.cart_lines(user_id)
        if not lines:
            raise Conflict("The cart is empty.")
        if len(lines) > MAX_ORDER_LINES:
            raise Conflict(f"An order holds at most {MAX_ORDER_LINES} different products; remove some first.")
        sums = totals(lines, self._rule)
        now = datetime.now(UTC)
        order = {
            "_id": order_id,
            "user_id": user_id,
            "status": PENDING,
            "items": [{k: line[k] for k in ("product_id", "name", "price_paise", "quantity")} for line in lines],
            "subtotal_paise": sums.subtotal_paise,
            "delivery_fee_paise": sums.delivery_fee_paise,
            "total_paise": sums.total_paise,
            "address": address,
            "note": note,
            "idempotency_key": key,
            "created_at": now,
            "updated_at": now,
        }
        try:
            await self._store.insert_order(order)
        except DuplicateOrder:
            existing = await self._store.order_by_key(key)
            if existing is None:
                raise Conflict("This checkout was just abandoned; try again.") from None
            return self._replay(existing), True
        await self._reserve(order)
        placed_at = stored_now()
        placed = {"status": OrderStatus.PLACED, "placed_at": placed_at, "promised_at": placed_at + self._promise}
        if not await transact(self._store.db, self._outbox, lambda s: self._mark_placed(s, order, lines, placed)):
            raise ServiceUnavailable("Placing the order took too long and was undone; try again.")
        order.update(placed)
        return order_view(order), False

    def _replay(self, order: Document) -> dict[str, Any]:
        if order["status"] in (PENDING, ABANDONED):
            raise Conflict("An order with this Idempotency-Key is being placed; retry shortly.")
        return order_view(order)

    async def _reserve(self, order: Document) -> None:
        # Each line at the price the cart last showed: the catalog refuses it if that changed.
        fields = ("product_id", "quantity", "price_paise")
        items = [{k: i[k] for k in fields} for i in order["items"]]
        order_id = str(order["_id"])
        try:
            await self._catalog.reserve(order_id, items)
        except Conflict:
            await self._store.delete_pending(order["_id"], PENDING)
            raise
        except ServiceUnavailable:
            # The catalog may have reserved before failing to answer: undo, or leave it
            # PENDING for recover_stale when the catalog cannot be reached now either.
            with contextlib.suppress(ServiceUnavailable):
                await self._catalog.release(order_id)
                await self._store.delete_pending(order["_id"], PENDING)
            raise

    async def _mark_placed(
        self, session: AsyncClientSession, order: Document, lines: list[Document], placed: Document
    ) -> bool:
        if not await self._store.move_order(order["_id"], [PENDING], placed, session=session):
            return False  # recover_stale gave up on it meanwhile
        await self._store.remove_ordered_lines(session, lines)
        await self._store.end_checkout(order["user_id"], order["_id"], session=session)
        await self._outbox.add(session, new_event(created_data({**order, **placed}), "orders"))
        return True

    async def history(self, user_id: str) -> list[dict[str, Any]]:
        return [order_view(o) for o in await self._store.orders_of(user_id, VISIBLE)]

    async def _own_order(self, principal: Principal, order_id: str) -> Document:
        order = await self._store.order(order_id)
        # Someone else's order is reported as missing: its existence is not theirs to know.
        if (
            order is None
            or order["status"] in (PENDING, ABANDONED)
            or (order["user_id"] != principal.user_id and not principal.is_staff)
        ):
            raise NotFound(f"No order with id {order_id!r}.")
        return order

    async def get(self, principal: Principal, order_id: str) -> dict[str, Any]:
        return order_view(await self._own_order(principal, order_id))

    async def cancel(self, principal: Principal, order_id: str) -> dict[str, Any]:
        """Cancel for the shopper. The delivery service decides (it owns the status); once it
        has said yes, the order is CANCELLED here too and ``order.cancelled`` (which returns
        the stock) is announced exactly once, whichever of this and ``follow_delivery`` comes
        first."""
        order = await self._own_order(principal, order_id)
        if order["user_id"] != principal.user_id:
            raise NotFound(f"No order with id {order_id!r}.")
        delivery = await self._delivery.cancel(order_id, principal.user_id, created_data(order).model_dump(mode="json"))
        changes = {
            "status": OrderStatus.CANCELLED,
            "updated_at": datetime.now(UTC),
            "delivery_version": delivery["version"],
        }
        await transact(self._store.db, self._outbox, lambda s: self._mark_cancelled(s, order, changes, "customer"))
        return await self.get(principal, order_id)

    async def _mark_cancelled(self, session: AsyncClientSession, order: Document, changes: Document, by: str) -> None:
        if await self._store.move_order(order["_id"], NOT_CANCELLED, changes, session=session):
            await self._outbox.add(session, order_cancelled(order, by))

    async def follow_delivery(self, session: AsyncClientSession, changed: DeliveryStatusChanged) -> None:
        """Mirror the delivery status; a cancellation (by staff, or the shopper's, if this
        event comes before the shopper's answer) also returns the stock, once."""
        order = await self._store.order(changed.order_id, session=session)
        if order is None or changed.version <= order.get("delivery_version", 0):
            return  # unknown, or older than what is already shown
        changes: dict[str, Any] = {"delivery_version": changed.version, "updated_at": datetime.now(UTC)}
        if changed.status == OrderStatus.CANCELLED:
            by = "customer" if changed.by == order["user_id"] else changed.by or "staff"
            await self._mark_cancelled(session, order, {**changes, "status": OrderStatus.CANCELLED}, by)
            return
        if order["status"] != OrderStatus.CANCELLED:
            changes["status"] = changed.status
        await self._store.move_order(order["_id"], [order["status"]], changes, session=session)

    async def recover_stale(self) -> int:
        """Take over checkouts older than the time limit: release their stock, drop them."""
        before = datetime.now(UTC) - self._stale_after
        recovered = 0
        for order in await self._store.stale_pending([PENDING, ABANDONED], before):
            try:
                recovered += await self._take_over(order)
            except (ServiceUnavailable, PyMongoError) as exc:
                log.info("stale_checkout_deferred", order_id=str(order["_id"]), reason=type(exc).__name__)
        return recovered

    async def _take_over(self, order: Document) -> int:
        with pymongo.timeout(RECOVERY_STEP_SECONDS):
            # Claimed first: once ABANDONED, the checkout that made it can no longer place it,
            # so stock is never released under a placed order. In a transaction: a crash may
            # have left the order inside one, and starting transactions is what lets the
            # database reap that one once it has expired (SecantusDB reaps no other way).
            claimed = order["status"] == ABANDONED or await transact(
                self._store.db,
                self._outbox,
                lambda session: self._store.move_order(order["_id"], [PENDING], {"status": ABANDONED}, session=session),
            )
        if not claimed:
            return 0  # placed (or taken over) meanwhile
        await self._catalog.release(str(order["_id"]))
        with pymongo.timeout(RECOVERY_STEP_SECONDS):
            # Deleted rather than kept, so a retry with the same Idempotency-Key can proceed.
            removed = await self._store.delete_pending(order["_id"], ABANDONED)
        if removed:
            log.warning("pending_order_released", order_id=str(order["_id"]))
        return int(removed)

    async def recover_forever(self, every: float = 5.0) -> None:
        while True:
            with contextlib.suppress(PyMongoError):
                await self.recover_stale()
            await asyncio.sleep(every)
