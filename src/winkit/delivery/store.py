"""MongoDB access for the delivery service (database ``winkit_delivery``)."""

from __future__ import annotations

from pymongo import ASCENDING, IndexModel
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase

from winkit.core.database import Document


class DeliveryStore:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.db = db
        self.statuses = db["delivery_statuses"]

    async def ensure_indexes(self) -> None:
        # The staff queue: open deliveries by status, oldest first.
        await self.statuses.create_indexes([IndexModel([("status", ASCENDING), ("created_at", ASCENDING)])])

    async def get(self, order_id: str, session: AsyncClientSession | None = None) -> Document | None:
        return await self.statuses.find_one({"_id": order_id}, session=session)

    async def in_statuses(self, statuses: list[str], limit: int) -> list[Document]:
        cursor = self.statuses.find({"status": {"$in": statuses}}).sort("created_at", ASCENDING).limit(limit)
        return await cursor.to_list()

    async def open(self, session: AsyncClientSession, record: Document) -> bool:
        """Insert the record unless one with its id exists; whether it was inserted."""
        fields = {k: v for k, v in record.items() if k != "_id"}
        result = await self.statuses.update_one(
            {"_id": record["_id"]}, {"$setOnInsert": fields}, upsert=True, session=session
        )
        return result.upserted_id is not None

    async def advance(self, session: AsyncClientSession, record: Document, status: str, entry: Document) -> bool:
        """Move to ``status`` only if nobody else changed the record since it was read."""
        result = await self.statuses.update_one(
            {"_id": record["_id"], "version": record["version"]},
            {
                "$set": {"status": status, "updated_at": entry["at"]},
                "$inc": {"version": 1},
                "$push": {"history": entry},
            },
            session=session,
        )
        return result.modified_count == 1
