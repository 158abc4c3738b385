"""Delivery records: opened by ``order.created``, moved by staff along the lifecycle,
each move announced as ``delivery.status_changed`` in the same transaction."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import structlog
from pymongo.asynchronous.client_session import AsyncClientSession

from winkit.delivery.lifecycle import Status, TransitionRefused, allowed_next, next_status
from winkit.delivery.store import DeliveryStore
from winkit.platform.auth import Principal
from winkit.platform.database import Document
from winkit.platform.errors import Conflict, NotFound
from winkit.platform.events import Outbox, new_event, transact

log = structlog.get_logger("winkit.delivery")

SYSTEM = "system"


def status_view(record: Document) -> dict[str, Any]:
    return {
        "order_id": record["_id"],
        "status": record["status"],
        "history": record["history"],
        "allowed_next": allowed_next(Status(record["status"])),
        "updated_at": record["updated_at"],
    }


def _refusal(refused: TransitionRefused) -> Conflict:
    allowed = [str(s) for s in refused.allowed]
    options = ", ".join(allowed) if allowed else "none: it is final"
    asked = f"to {refused.requested}" if refused.requested else "one step further"
    return Conflict(
        f"An order that is {refused.current} cannot move {asked}; allowed next: {options}.", allowed_next=allowed
    )


class Tracking:
    def __init__(self, store: DeliveryStore, outbox: Outbox) -> None:
        self._store = store
        self._outbox = outbox

    async def _visible(self, principal: Principal, order_id: str) -> Document:
        record = await self._store.get(order_id)
        # Someone else's order is reported as missing: its existence is not theirs to know.
        if record is None or (record["user_id"] != principal.user_id and not principal.is_staff):
            raise NotFound(f"No delivery for order {order_id!r}.")
        return record

    async def status(self, principal: Principal, order_id: str) -> dict[str, Any]:
        return status_view(await self._visible(principal, order_id))

    async def update(self, principal: Principal, order_id: str, requested: Status | None) -> dict[str, Any]:
        record = await self._visible(principal, order_id)
        try:
            target = next_status(Status(record["status"]), requested)
        except TransitionRefused as refused:
            raise _refusal(refused) from None

        async def change(session: AsyncClientSession) -> None:
            await self._move(session, record, target, principal.user_id)

        await transact(self._store.db, self._outbox, change)
        return status_view(await self._visible(principal, order_id))

    async def _move(self, session: AsyncClientSession, record: Document, target: Status, by: str) -> None:
        now = datetime.now(UTC)
        if not await self._store.advance(session, record, target, {"status": target, "at": now, "by": by}):
            raise Conflict("The status was changed by someone else just now; reload and try again.")
        data = {
            "order_id": record["_id"],
            "user_id": record["user_id"],
            "status": target,
            "previous": record["status"],
            "version": record["version"] + 1,
            "by": by,
            "at": now.isoformat(),
        }
        await self._outbox.add(session, new_event("delivery.status_changed", "delivery", data))

    async def open_in(self, session: AsyncClientSession, data: dict[str, Any]) -> None:
        """Start tracking a new order at PLACED (once, however often the event comes)."""
        if await self._store.get(data["order_id"], session=session) is not None:
            return
        now = datetime.now(UTC)
        await self._store.insert(
            session,
            {
                "_id": data["order_id"],
                "user_id": data["user_id"],
                "status": Status.PLACED,
                "history": [{"status": Status.PLACED, "at": now, "by": SYSTEM}],
                "version": 1,
                "created_at": now,
                "updated_at": now,
            },
        )

    async def cancel_in(self, session: AsyncClientSession, data: dict[str, Any]) -> None:
        """The shopper cancelled in the order service: follow, if the parcel has not left."""
        await self.open_in(session, data)  # the cancellation may overtake order.created
        record = await self._store.get(data["order_id"], session=session)
        assert record is not None
        if record["status"] == Status.CANCELLED:
            return
        if Status.CANCELLED not in allowed_next(Status(record["status"])):
            log.warning("cancel_too_late", order_id=record["_id"], status=record["status"])
            return
        await self._move(session, record, Status.CANCELLED, data.get("by", "customer"))
