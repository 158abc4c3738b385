"""Delivery records: opened by ``order.created`` (announced as ``delivery.opened``),
moved by staff along the lifecycle, each move announced as ``delivery.status_changed`` in
the same transaction; and the live streams that follow them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import structlog
from fastapi.sse import ServerSentEvent
from pymongo.asynchronous.client_session import AsyncClientSession

from winkit.core.auth import Principal
from winkit.core.database import Document
from winkit.core.errors import Conflict, NotFound
from winkit.core.event_contracts import DeliveryOpened, DeliveryStatusChanged, OrderCreated
from winkit.core.money import CURRENCY, to_rupees
from winkit.core.order_status import OrderStatus
from winkit.core.outbox import Outbox, new_event, transact
from winkit.core.sse import HEARTBEAT
from winkit.delivery.lifecycle import (
    FINAL,
    OPEN,
    SHOPPER_CANCELLABLE,
    TransitionRefused,
    allowed_next,
    next_status,
)
from winkit.delivery.live import EVERY_ORDER, LiveUpdates
from winkit.delivery.store import DeliveryStore

log = structlog.get_logger("winkit.delivery")

SYSTEM = "system"
BOARD_LIMIT = 200
SHOPPER_CANCELLABLE_NAMES = [str(s) for s in OPEN if s in SHOPPER_CANCELLABLE]


def status_view(record: Document) -> dict[str, Any]:
    return {
        "order_id": record["_id"],
        "status": record["status"],
        "history": record["history"],
        "allowed_next": allowed_next(OrderStatus(record["status"])),
        "updated_at": record["updated_at"],
        "promised_at": record.get("promised_at"),
        "version": record["version"],
    }


def delivery_view(record: Document) -> dict[str, Any]:
    """What staff need to pack and send an order."""
    total = record.get("total_paise")
    return {
        **status_view(record),
        "user_id": record["user_id"],
        "items": record.get("items", []),
        "address": record.get("address"),
        "total": None if total is None else to_rupees(total),
        "currency": CURRENCY,
        "placed_at": record.get("placed_at"),
    }


def _when(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) else None


def _refusal(refused: TransitionRefused) -> Conflict:
    allowed = [str(s) for s in refused.allowed]
    options = ", ".join(allowed) if allowed else "none: it is final"
    asked = f"to {refused.requested}" if refused.requested else "one step further"
    return Conflict(
        f"An order that is {refused.current} cannot move {asked}; allowed next: {options}.", allowed_next=allowed
    )


class Tracking:
    def __init__(self, store: DeliveryStore, outbox: Outbox, live: LiveUpdates, heartbeat: float) -> None:
        self._store = store
        self._outbox = outbox
        self._live = live
        self._heartbeat = heartbeat

    async def _visible(self, principal: Principal, order_id: str) -> Document:
        record = await self._store.get(order_id)
        # Someone else's order is reported as missing: its existence is not theirs to know.
        if record is None or (record["user_id"] != principal.user_id and not principal.is_staff):
            raise NotFound(f"No delivery for order {order_id!r}.")
        return record

    async def status(self, principal: Principal, order_id: str) -> dict[str, Any]:
        return status_view(await self._visible(principal, order_id))

    async def open_deliveries(
        self, statuses: list[OrderStatus] | None, limit: int = BOARD_LIMIT
    ) -> list[dict[str, Any]]:
        """The staff queue: deliveries in ``statuses`` (every open one by default), oldest first."""
        records = await self._store.in_statuses([str(s) for s in statuses or OPEN], limit)
        return [delivery_view(record) for record in records]

    async def order_events(self, principal: Principal, order_id: str) -> AsyncIterator[ServerSentEvent]:
        """Checks access now (so a refusal is a plain 4xx), then streams the order's status:
        at once, on every change, and ``end`` once it is final."""
        await self._visible(principal, order_id)
        return self._follow(order_id)

    async def _follow(self, order_id: str) -> AsyncIterator[ServerSentEvent]:
        with self._live.watch(order_id) as changes:
            # Read after starting to watch: a change in between is then not missed.
            record = await self._store.get(order_id)
            assert record is not None
            yield ServerSentEvent(event="status", data=status_view(record))
            while record["status"] not in FINAL:
                try:
                    latest = await asyncio.wait_for(changes.get(), self._heartbeat)
                except TimeoutError:
                    # Quiet: re-read, in case a change was missed while the bus was away.
                    latest = await self._store.get(order_id) or record
                    if latest["version"] == record["version"]:
                        yield HEARTBEAT
                        continue
                if latest["version"] > record["version"]:
                    record = latest
                    yield ServerSentEvent(event="status", data=status_view(record))
            yield ServerSentEvent(event="end", data={"order_id": order_id, "status": record["status"]})

    async def board_events(self) -> AsyncIterator[ServerSentEvent]:
        """Staff: every open delivery at once (``snapshot``), then each new or changed one
        (``delivery``; a final status means it leaves the board)."""
        with self._live.watch(EVERY_ORDER) as changes:
            shown = await self.open_deliveries(None)
            yield ServerSentEvent(event="snapshot", data=shown)
            while True:
                try:
                    record = await asyncio.wait_for(changes.get(), self._heartbeat)
                except TimeoutError:
                    latest = await self.open_deliveries(None)
                    if _states(latest) != _states(shown):
                        yield ServerSentEvent(event="snapshot", data=latest)
                    else:
                        yield HEARTBEAT
                    shown = latest
                    continue
                yield ServerSentEvent(event="delivery", data=delivery_view(record))

    async def update(self, principal: Principal, order_id: str, requested: OrderStatus | None) -> dict[str, Any]:
        record = await self._visible(principal, order_id)
        try:
            target = next_status(OrderStatus(record["status"]), requested)
        except TransitionRefused as refused:
            raise _refusal(refused) from None

        async def change(session: AsyncClientSession) -> None:
            await self._move(session, record, target, principal.user_id)

        await transact(self._store.db, self._outbox, change)
        # Logged once committed: a transaction retried on a conflict runs ``change`` again.
        log.info(
            "status_changed", order_id=order_id, previous=record["status"], status=str(target), by=principal.user_id
        )
        return status_view(await self._visible(principal, order_id))

    async def _move(self, session: AsyncClientSession, record: Document, target: OrderStatus, by: str) -> None:
        now = datetime.now(UTC)
        if not await self._store.advance(session, record, target, {"status": target, "at": now, "by": by}):
            raise Conflict("The status was changed by someone else just now; reload and try again.")
        changed = DeliveryStatusChanged(
            order_id=record["_id"],
            user_id=record["user_id"],
            status=target,
            previous=record["status"],
            version=record["version"] + 1,
            by=by,
            at=now.isoformat(),
        )
        await self._outbox.add(session, new_event(changed, "delivery"))

    async def open_in(self, session: AsyncClientSession, created: OrderCreated) -> None:
        """Start tracking a new order at PLACED (once, however often the event comes), with
        what staff need to pack and deliver it."""
        now = datetime.now(UTC)
        items = [{k: item.get(k) for k in ("product_id", "name", "quantity")} for item in created.items]
        opened = await self._store.open(
            session,
            {
                "_id": created.order_id,
                "user_id": created.user_id,
                "status": OrderStatus.PLACED,
                "history": [{"status": OrderStatus.PLACED, "at": now, "by": SYSTEM}],
                "version": 1,
                "items": items,
                "address": created.address,
                "total_paise": created.total_paise,
                "placed_at": _when(created.placed_at) or _when(created.created_at),
                "promised_at": _when(created.promised_at),
                "created_at": now,
                "updated_at": now,
            },
        )
        if not opened:
            return  # opened before: a repeated event, or a cancellation that came first
        announced = DeliveryOpened(order_id=created.order_id, user_id=created.user_id, at=now.isoformat())
        await self._outbox.add(session, new_event(announced, "delivery"))

    async def cancel_for_shopper(self, order_id: str, user_id: str, order: OrderCreated) -> dict[str, Any]:
        """The shopper's cancellation, decided here where the status lives, with the same
        version check as staff updates: it wins only if the order is still PLACED or
        CONFIRMED when it is written. ``order`` is the order as ``order.created`` carries
        it, to open the record first if the cancellation overtook that event."""

        async def change(session: AsyncClientSession) -> None:
            await self.open_in(session, order.model_copy(update={"order_id": order_id, "user_id": user_id}))
            record = await self._store.get(order_id, session=session)
            assert record is not None
            if record["user_id"] != user_id:
                raise NotFound(f"No delivery for order {order_id!r}.")
            if record["status"] == OrderStatus.CANCELLED:
                return  # cancelled already: the same answer again
            if OrderStatus(record["status"]) not in SHOPPER_CANCELLABLE:
                allowed = " or ".join(SHOPPER_CANCELLABLE_NAMES)
                raise Conflict(
                    f"An order that is {record['status']} can no longer be cancelled (allowed while {allowed}).",
                    current_status=record["status"],
                )
            await self._move(session, record, OrderStatus.CANCELLED, user_id)

        await transact(self._store.db, self._outbox, change)
        record = await self._store.get(order_id)
        assert record is not None
        log.info("status_changed", order_id=order_id, status=record["status"], by="customer")
        return status_view(record)


def _states(deliveries: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(d["order_id"], d["status"]) for d in deliveries]
