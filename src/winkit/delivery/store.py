"""MongoDB access for the delivery service (database ``winkit_delivery``): delivery records
in ``delivery_statuses``, one per order, its id the order's."""

from __future__ import annotations

from collections.abc import Iterable

from pymongo import ASCENDING, IndexModel
from pymongo.asynchronous.database import AsyncDatabase

from winkit.core.database import Document
from winkit.core.order_status import OrderStatus
from winkit.core.outbox import Outbox
from winkit.core.store import Store
from winkit.delivery.models import DeliveryRecord, StatusChange


class DeliveryStore(Store):
    def __init__(self, db: AsyncDatabase[Document], outbox: Outbox) -> None:
        super().__init__(db, outbox)
        self.statuses = db["delivery_statuses"]

    async def ensure_indexes(self) -> None:
        # The staff queue: open deliveries by status, oldest first.
        await self.statuses.create_indexes([IndexModel([("status", ASCENDING), ("created_at", ASCENDING)])])

    async def get(self, order_id: str) -> DeliveryRecord | None:
        return DeliveryRecord.from_optional(await self.statuses.find_one({"_id": order_id}, session=self.session))

    async def in_statuses(self, statuses: Iterable[OrderStatus], limit: int) -> list[DeliveryRecord]:
        """Records in ``statuses``, oldest first."""
        cursor = self.statuses.find({"status": {"$in": list(statuses)}}, session=self.session)
        docs = await cursor.sort("created_at", ASCENDING).limit(limit).to_list()
        return [DeliveryRecord.from_document(doc) for doc in docs]

    async def open(self, record: DeliveryRecord) -> bool:
        """Insert the record unless one with its id exists; whether it was inserted."""
        result = await self.statuses.update_one(
            {"_id": record.order_id},
            {"$setOnInsert": record.model_dump(by_alias=True, exclude={"order_id"})},
            upsert=True,
            session=self.session,
        )
        return result.upserted_id is not None

    async def advance(self, record: DeliveryRecord, change: StatusChange) -> bool:
        """Move to ``change.status`` only if nobody else changed the record since it was read."""
        result = await self.statuses.update_one(
            {"_id": record.order_id, "version": record.version},
            {
                "$set": {"status": change.status, "updated_at": change.at},
                "$inc": {"version": 1},
                "$push": {"history": change.to_document()},
            },
            session=self.session,
        )
        return result.modified_count == 1
