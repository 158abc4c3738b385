"""Delivery records: opened by ``order.created`` (announced as ``delivery.opened``),
moved by staff along the lifecycle, each move announced as ``delivery.status_changed`` in
the same unit of work; and the live streams that follow them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import structlog
from fastapi.sse import ServerSentEvent

from winkit.core.auth import Principal
from winkit.core.errors import Conflict, NotFound
from winkit.core.event_contracts import DeliveryOpened, DeliveryStatusChanged, OrderCreated
from winkit.core.order_status import OrderStatus
from winkit.core.sse import HEARTBEAT
from winkit.delivery.lifecycle import (
    FINAL,
    OPEN,
    SHOPPER_CANCELLABLE,
    TransitionRefused,
    next_status,
)
from winkit.delivery.live import EVERY_ORDER, LiveUpdates
from winkit.delivery.models import DeliveryRecord, StatusChange
from winkit.delivery.schemas import DeliveryStatus, OpenDelivery
from winkit.delivery.store import DeliveryStore

log = structlog.get_logger("winkit.delivery")

BOARD_LIMIT = 200
SHOPPER_CANCELLABLE_NAMES = [str(s) for s in OPEN if s in SHOPPER_CANCELLABLE]


# Streams send views dumped as Python values: their datetimes go out in isoformat
# ("+00:00"), as they always have, where HTTP answers (pydantic's JSON) write "Z".
def status_event(record: DeliveryRecord) -> ServerSentEvent:
    return ServerSentEvent(event="status", data=DeliveryStatus.of(record).model_dump())


def delivery_event(record: DeliveryRecord) -> ServerSentEvent:
    return ServerSentEvent(event="delivery", data=OpenDelivery.of(record).model_dump())


def snapshot_event(records: list[DeliveryRecord]) -> ServerSentEvent:
    return ServerSentEvent(event="snapshot", data=[OpenDelivery.of(record).model_dump() for record in records])


def _refusal(refused: TransitionRefused) -> Conflict:
    allowed = [str(s) for s in refused.allowed]
    options = ", ".join(allowed) if allowed else "none: it is final"
    asked = f"to {refused.requested}" if refused.requested else "one step further"
    return Conflict(
        f"An order that is {refused.current} cannot move {asked}; allowed next: {options}.", allowed_next=allowed
    )


class Tracking:
    def __init__(self, store: DeliveryStore, live: LiveUpdates, heartbeat: float) -> None:
        self._store = store
        self._live = live
        self._heartbeat = heartbeat

    async def _visible(self, principal: Principal, order_id: str) -> DeliveryRecord:
        record = await self._store.get(order_id)
        # Someone else's order is reported as missing: its existence is not theirs to know.
        if record is None or (record.user_id != principal.user_id and not principal.is_staff):
            raise NotFound(f"No delivery for order {order_id!r}.")
        return record

    async def status(self, principal: Principal, order_id: str) -> DeliveryRecord:
        return await self._visible(principal, order_id)

    async def open_deliveries(
        self, statuses: list[OrderStatus] | None, limit: int = BOARD_LIMIT
    ) -> list[DeliveryRecord]:
        """The staff queue: deliveries in ``statuses`` (every open one by default), oldest first."""
        return await self._store.in_statuses(statuses or OPEN, limit)

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
            yield status_event(record)
            while record.status not in FINAL:
                try:
                    latest = await asyncio.wait_for(changes.get(), self._heartbeat)
                except TimeoutError:
                    # Quiet: re-read, in case a change was missed while the bus was away.
                    latest = await self._store.get(order_id) or record
                    if latest.version == record.version:
                        yield HEARTBEAT
                        continue
                if latest.version > record.version:
                    record = latest
                    yield status_event(record)
            yield ServerSentEvent(event="end", data={"order_id": order_id, "status": record.status})

    async def board_events(self) -> AsyncIterator[ServerSentEvent]:
        """Staff: every open delivery at once (``snapshot``), then each new or changed one
        (``delivery``; a final status means it leaves the board)."""
        with self._live.watch(EVERY_ORDER) as changes:
            shown = await self.open_deliveries(None)
            yield snapshot_event(shown)
            while True:
                try:
                    record = await asyncio.wait_for(changes.get(), self._heartbeat)
                except TimeoutError:
                    latest = await self.open_deliveries(None)
                    yield snapshot_event(latest) if _states(latest) != _states(shown) else HEARTBEAT
                    shown = latest
                    continue
                yield delivery_event(record)

    async def update(self, principal: Principal, order_id: str, requested: OrderStatus | None) -> DeliveryRecord:
        record = await self._visible(principal, order_id)
        try:
            target = next_status(record.status, requested)
        except TransitionRefused as refused:
            raise _refusal(refused) from None
        await self._store.atomically(lambda: self._move(record, target, principal.user_id))
        # Logged once committed: a unit of work retried on a conflict runs ``_move`` again.
        log.info(
            "status_changed", order_id=order_id, previous=str(record.status), status=str(target), by=principal.user_id
        )
        return await self._visible(principal, order_id)

    async def _move(self, record: DeliveryRecord, target: OrderStatus, by: str) -> None:
        """Inside a unit of work: move ``record`` to ``target`` and announce it."""
        change = StatusChange(status=target, at=datetime.now(UTC), by=by)
        if not await self._store.advance(record, change):
            raise Conflict("The status was changed by someone else just now; reload and try again.")
        await self._store.announce(
            DeliveryStatusChanged(
                order_id=record.order_id,
                user_id=record.user_id,
                status=target,
                previous=record.status,
                version=record.version + 1,
                by=by,
                at=change.at.isoformat(),
            )
        )

    async def open(self, created: OrderCreated) -> None:
        """Start tracking a new order at PLACED (once, however often the event comes), with
        what staff need to pack and deliver it."""

        async def open_and_announce() -> None:
            record = DeliveryRecord.placed(created, datetime.now(UTC))
            if not await self._store.open(record):
                return  # opened before: a repeated event, or a cancellation that came first
            at = record.created_at.isoformat()
            await self._store.announce(DeliveryOpened(order_id=record.order_id, user_id=record.user_id, at=at))

        await self._store.atomically(open_and_announce)

    async def cancel_for_shopper(self, order_id: str, user_id: str, order: OrderCreated) -> DeliveryRecord:
        """The shopper's cancellation, decided here where the status lives, with the same
        version check as staff updates: it wins only if the order is still PLACED or
        CONFIRMED when it is written. ``order`` is the order as ``order.created`` carries
        it, to open the record first if the cancellation overtook that event."""

        async def open_then_cancel() -> None:
            await self.open(order.model_copy(update={"order_id": order_id, "user_id": user_id}))
            record = await self._store.get(order_id)
            assert record is not None
            if record.user_id != user_id:
                raise NotFound(f"No delivery for order {order_id!r}.")
            if record.status == OrderStatus.CANCELLED:
                return  # cancelled already: the same answer again
            if record.status not in SHOPPER_CANCELLABLE:
                allowed = " or ".join(SHOPPER_CANCELLABLE_NAMES)
                raise Conflict(
                    f"An order that is {record.status} can no longer be cancelled (allowed while {allowed}).",
                    current_status=record.status,
                )
            await self._move(record, OrderStatus.CANCELLED, user_id)

        await self._store.atomically(open_then_cancel)
        record = await self._store.get(order_id)
        assert record is not None
        log.info("status_changed", order_id=order_id, status=str(record.status), by="customer")
        return record


def _states(deliveries: list[DeliveryRecord]) -> list[tuple[str, OrderStatus]]:
    return [(d.order_id, d.status) for d in deliveries]
