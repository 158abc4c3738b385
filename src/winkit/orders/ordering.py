"""Orders from checkout to the end: placing them (checkout), reading them (history, one
order), cancelling them, following their delivery, and recovering checkouts a crash left.

Placing an order: record it as PENDING, ask the catalog to reserve every line's stock
(all or nothing), then in one unit of work mark it PLACED, empty those cart lines and
announce ``order.created``. A PENDING order left behind by a crash or an unreachable
catalog is taken over by ``recover_stale`` once older than the reservation timeout: marked
ABANDONED first (so a checkout still running cannot place it afterwards), then its stock
is released, then it is removed.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime, timedelta

import structlog

from winkit.core.address import DeliveryAddress, ShippingAddress
from winkit.core.auth import Principal
from winkit.core.database import stored_now
from winkit.core.errors import Conflict, NotFound, Problem, ServiceUnavailable
from winkit.core.event_contracts import DeliveryStatusChanged, OrderCancelled, OrderCreated, OrderedItem
from winkit.core.ids import MAX_ORDER_LINES
from winkit.core.money import to_rupees
from winkit.core.order_status import OrderStatus
from winkit.orders.catalog_client import CatalogClient
from winkit.orders.delivery_client import DeliveryClient
from winkit.orders.models import CartItem, CheckoutHold, OrderChange, OrderId, OrderRecord, Unplaced, new_order_id
from winkit.orders.pricing import FeeRule, totals
from winkit.orders.store import CartBusy, DuplicateOrder, OrdersStore, StoreUnavailable
from winkit.orders.users_client import UsersClient

log = structlog.get_logger("winkit.checkout")

# Each step of taking over one stale checkout may wait this long: a write to an order that
# a crashed process left inside a transaction waits until the database reaps that
# transaction (60 s); meanwhile the other stale checkouts are taken over.
RECOVERY_STEP_SECONDS = 5.0
# Every status but the internal ones (Unplaced) is one a shopper sees (OrderStatus).
VISIBLE = list(OrderStatus)
NOT_CANCELLED = [s for s in VISIBLE if s != OrderStatus.CANCELLED]


def created_data(order: OrderRecord) -> OrderCreated:
    """The order as ``order.created`` announces it (and the delivery service records it)."""
    return OrderCreated(
        order_id=str(order.id),
        user_id=order.user_id,
        items=order.items,
        total_paise=order.total_paise,
        address=order.address,
        created_at=order.created_at.isoformat(),
        placed_at=order.placed_at.isoformat() if order.placed_at else None,
        promised_at=order.promised_at.isoformat() if order.promised_at else None,
    )


class Orders:
    """Every order operation of the orders service (the cart has its own module)."""

    def __init__(
        self,
        store: OrdersStore,
        catalog: CatalogClient,
        users: UsersClient,
        delivery: DeliveryClient,
        rule: FeeRule,
        promise: timedelta,
        stale_after: timedelta,
    ) -> None:
        self._store = store
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
        address: DeliveryAddress | None,
        note: str | None,
    ) -> tuple[OrderRecord, bool]:
        """The placed order, and whether it was placed before (a replayed Idempotency-Key).
        The address is given, or one of the shopper's saved ones (``address_id``)."""
        user_id = principal.user_id
        order_id = new_order_id()
        key = f"key:{user_id}:{idempotency_key}" if idempotency_key else f"order:{order_id}"
        if idempotency_key and (existing := await self._store.order_by_key(key)):
            return self._replay(existing), True
        # One checkout of a cart at a time: a double click must not order the same lines twice.
        now = stored_now()
        try:
            await self._store.start_checkout(
                CheckoutHold(user_id=user_id, order_id=order_id, since=now), now - self._stale_after
            )
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
            # Placing ends the hold in its own unit of work; this ends it otherwise.
            if not placed:
                await self._store.end_checkout(user_id, order_id)
        if not replayed:
            log.info(
                "order_placed", order_id=str(order.id), lines=len(order.items), total=str(to_rupees(order.total_paise))
            )
        return order, replayed

    async def _place_held(
        self,
        principal: Principal,
        order_id: OrderId,
        key: str,
        address_id: str | None,
        address: DeliveryAddress | None,
        note: str | None,
    ) -> tuple[OrderRecord, bool]:
        user_id = principal.user_id
        destination: ShippingAddress
        if address is None:
            assert address_id is not None
            items, destination = await asyncio.gather(
                self._store.cart_items(user_id), self._users.saved_address(principal, address_id)
            )
        else:
            items = await self._store.cart_items(user_id)
            destination = ShippingAddress.model_validate(address.model_dump())
        if not items:
            raise Conflict("The cart is empty.")
        if len(items) > MAX_ORDER_LINES:
            raise Conflict(f"An order holds at most {MAX_ORDER_LINES} different products; remove some first.")
        sums = totals(items, self._rule)
        now = datetime.now(UTC)
        order = OrderRecord(
            id=order_id,
            user_id=user_id,
            status=Unplaced.PENDING,
            items=[
                OrderedItem(product_id=i.product_id, name=i.name, price_paise=i.price_paise, quantity=i.quantity)
                for i in items
            ],
            subtotal_paise=sums.subtotal_paise,
            delivery_fee_paise=sums.delivery_fee_paise,
            total_paise=sums.total_paise,
            address=destination,
            note=note,
            idempotency_key=key,
            created_at=now,
            updated_at=now,
        )
        try:
            await self._store.insert_order(order)
        except DuplicateOrder:
            existing = await self._store.order_by_key(key)
            if existing is None:
                raise Conflict("This checkout was just abandoned; try again.") from None
            return self._replay(existing), True
        await self._reserve(order)
        placed_at = stored_now()
        placed = order.model_copy(
            update={"status": OrderStatus.PLACED, "placed_at": placed_at, "promised_at": placed_at + self._promise}
        )
        if not await self._store.atomically(lambda: self._mark_placed(placed, items)):
            raise ServiceUnavailable("Placing the order took too long and was undone; try again.")
        return placed, False

    def _replay(self, order: OrderRecord) -> OrderRecord:
        if isinstance(order.status, Unplaced):
            raise Conflict("An order with this Idempotency-Key is being placed; retry shortly.")
        return order

    async def _reserve(self, order: OrderRecord) -> None:
        # Each line at the price the cart last showed: the catalog refuses it if that changed.
        order_id = str(order.id)
        try:
            await self._catalog.reserve(order_id, order.items)
        except Conflict:
            await self._store.delete_unplaced(order.id, Unplaced.PENDING)
            raise
        except ServiceUnavailable:
            # The catalog may have reserved before failing to answer: undo, or leave it
            # PENDING for recover_stale when the catalog cannot be reached now either.
            with contextlib.suppress(ServiceUnavailable):
                await self._catalog.release(order_id)
                await self._store.delete_unplaced(order.id, Unplaced.PENDING)
            raise

    async def _mark_placed(self, placed: OrderRecord, items: list[CartItem]) -> bool:
        change = OrderChange(status=placed.status, placed_at=placed.placed_at, promised_at=placed.promised_at)
        if not await self._store.move_order(placed.id, [Unplaced.PENDING], change):
            return False  # recover_stale gave up on it meanwhile
        await self._store.remove_ordered_items(items)
        await self._store.end_checkout(placed.user_id, placed.id)
        await self._store.announce(created_data(placed))
        return True

    async def history(self, user_id: str) -> list[OrderRecord]:
        return await self._store.orders_of(user_id, VISIBLE)

    async def get(self, principal: Principal, order_id: str) -> OrderRecord:
        order = await self._store.order(order_id)
        # Someone else's order is reported as missing: its existence is not theirs to know.
        if (
            order is None
            or isinstance(order.status, Unplaced)
            or (order.user_id != principal.user_id and not principal.is_staff)
        ):
            raise NotFound(f"No order with id {order_id!r}.")
        return order

    async def cancel(self, principal: Principal, order_id: str) -> OrderRecord:
        """Cancel for the shopper. The delivery service decides (it owns the status); once it
        has said yes, the order is CANCELLED here too and ``order.cancelled`` (which returns
        the stock) is announced exactly once, whichever of this and ``follow_delivery`` comes
        first."""
        order = await self.get(principal, order_id)
        if order.user_id != principal.user_id:
            raise NotFound(f"No order with id {order_id!r}.")
        delivery = await self._delivery.cancel(order_id, principal.user_id, created_data(order))
        change = OrderChange(
            status=OrderStatus.CANCELLED, updated_at=datetime.now(UTC), delivery_version=delivery.version
        )
        await self._store.atomically(lambda: self._mark_cancelled(order, change, "customer"))
        return await self.get(principal, order_id)

    async def _mark_cancelled(self, order: OrderRecord, change: OrderChange, by: str) -> None:
        if await self._store.move_order(order.id, NOT_CANCELLED, change):
            await self._store.announce(OrderCancelled(order_id=str(order.id), user_id=order.user_id, by=by))

    async def follow_delivery(self, changed: DeliveryStatusChanged) -> None:
        """Mirror the delivery status; a cancellation (by staff, or the shopper's, if this
        event comes before the shopper's answer) also returns the stock, once. Read and
        written in one unit of work (a reaction's: the one recording the event handled)."""
        await self._store.atomically(lambda: self._follow(changed))

    async def _follow(self, changed: DeliveryStatusChanged) -> None:
        order = await self._store.order(changed.order_id)
        if order is None or changed.version <= (order.delivery_version or 0):
            return  # unknown, or older than what is already shown
        now = datetime.now(UTC)
        if changed.status == OrderStatus.CANCELLED:
            by = "customer" if changed.by == order.user_id else changed.by or "staff"
            cancelled = OrderChange(status=OrderStatus.CANCELLED, updated_at=now, delivery_version=changed.version)
            await self._mark_cancelled(order, cancelled, by)
            return
        status = None if order.status == OrderStatus.CANCELLED else changed.status
        change = OrderChange(status=status, updated_at=now, delivery_version=changed.version)
        await self._store.move_order(order.id, [order.status], change)

    async def recover_stale(self) -> int:
        """Take over checkouts older than the time limit: release their stock, drop them.
        One that cannot be taken over now (the catalog or the database not answering in
        time) is left for the next round."""
        before = datetime.now(UTC) - self._stale_after
        recovered = 0
        for order in await self._store.stale_unplaced(before):
            try:
                recovered += await self._take_over(order)
            except (ServiceUnavailable, StoreUnavailable) as exc:
                log.info("stale_checkout_deferred", order_id=str(order.id), reason=f"{type(exc).__name__}: {exc}")
        return recovered

    async def _take_over(self, order: OrderRecord) -> int:
        with self._store.time_limit(RECOVERY_STEP_SECONDS):
            # Claimed first: once ABANDONED, the checkout that made it can no longer place it,
            # so stock is never released under a placed order. In a unit of work: a crash may
            # have left the order inside a transaction, and starting transactions is what lets
            # the database reap that one once it has expired (SecantusDB reaps no other way).
            abandoning = OrderChange(status=Unplaced.ABANDONED)
            claimed = order.status == Unplaced.ABANDONED or await self._store.atomically(
                lambda: self._store.move_order(order.id, [Unplaced.PENDING], abandoning)
            )
        if not claimed:
            return 0  # placed (or taken over) meanwhile
        await self._catalog.release(str(order.id))
        with self._store.time_limit(RECOVERY_STEP_SECONDS):
            # Deleted rather than kept, so a retry with the same Idempotency-Key can proceed.
            removed = await self._store.delete_unplaced(order.id, Unplaced.ABANDONED)
        if removed:
            log.warning("pending_order_released", order_id=str(order.id))
        return int(removed)

    async def recover_forever(self, every: float = 5.0) -> None:
        while True:
            try:
                await self.recover_stale()
            except Exception as exc:
                # This loop must keep going: the next round tries again (a database back, say).
                log.warning("stale_checkout_recovery_failed", error=f"{type(exc).__name__}: {exc}")
            await asyncio.sleep(every)
