"""MongoDB access for the catalog service (database ``winkit_catalog``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from pymongo import ASCENDING, IndexModel, UpdateOne
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from winkit.core.database import Document, object_id

ACTIVE: Document = {"deleted_at": None}
# Every write to a product raises its version by one (a new product is at 1), so whoever
# holds a copy can tell a newer document from an older one.
VERSION = "version"
BUMP: Document = {VERSION: 1}
ALL_PRODUCTS_BATCH = 200


class SkuTaken(Exception):
    pass


class CatalogStore:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.db = db
        self.products = db["products"]
        self.reservations = db["reservations"]

    async def ensure_indexes(self) -> None:
        await self.products.create_indexes(
            [
                IndexModel([("sku", ASCENDING)], unique=True),
                IndexModel([("category", ASCENDING), ("name_key", ASCENDING)]),
                IndexModel([("name_key", ASCENDING)]),
            ]
        )

    async def is_empty(self) -> bool:
        return await self.products.find_one({}, {"_id": 1}) is None

    async def add_missing(
        self,
        products: list[Document],
        session: AsyncClientSession | None = None,
    ) -> list[Document]:
        """Insert products whose sku is not there yet (safe to repeat); those inserted."""
        ops = [UpdateOne({"sku": p["sku"]}, {"$setOnInsert": {**p, **BUMP}}, upsert=True) for p in products]
        result = await self.products.bulk_write(ops, ordered=False, session=session)
        upserted = result.upserted_ids or {}
        return [{**products[index], **BUMP, "_id": oid} for index, oid in upserted.items()]

    async def all_products(self) -> AsyncIterator[Document]:
        """Every product, deleted ones too, one at a time."""
        # Small batches: the driver decodes each batch in one go, holding up the event loop.
        async for doc in self.products.find({}, batch_size=ALL_PRODUCTS_BATCH):
            yield doc

    async def get(self, product_id: str, session: AsyncClientSession | None = None) -> Document | None:
        oid = object_id(product_id)
        return None if oid is None else await self.products.find_one({"_id": oid, **ACTIVE}, session=session)

    async def insert(self, product: Document, session: AsyncClientSession | None = None) -> Document:
        product = {**product, **BUMP}
        try:
            result = await self.products.insert_one(product, session=session)
        except DuplicateKeyError as exc:
            raise SkuTaken(product["sku"]) from exc
        return {**product, "_id": result.inserted_id}

    async def update(
        self, product_id: str, changes: dict[str, Any], session: AsyncClientSession | None = None
    ) -> Document | None:
        oid = object_id(product_id)
        if oid is None:
            return None
        # update_one + read by _id: SecantusDB scans the collection for find_one_and_update
        # with a filter beyond _id.
        result = await self.products.update_one(
            {"_id": oid, **ACTIVE}, {"$set": changes, "$inc": BUMP}, session=session
        )
        if result.matched_count == 0:
            return None
        return await self.products.find_one({"_id": oid}, session=session)

    async def products_by_ids(
        self, product_ids: list[str], session: AsyncClientSession | None = None
    ) -> list[Document]:
        oids = [oid for oid in map(object_id, product_ids) if oid is not None]
        return await self.products.find({"_id": {"$in": oids}}, session=session).to_list()

    # stock
    async def take_stock(
        self, session: AsyncClientSession, product_id: str, quantity: int, price_paise: int | None = None
    ) -> Document | None:
        """Decrement stock if enough is there (and the price is still ``price_paise``, when
        given); the product after, or None when short, repriced or unknown."""
        oid = object_id(product_id)
        if oid is None:
            return None
        price = {} if price_paise is None else {"price_paise": price_paise}
        result = await self.products.update_one(
            {"_id": oid, "stock": {"$gte": quantity}, **price, **ACTIVE},
            {"$inc": {"stock": -quantity, **BUMP}},
            session=session,
        )
        if result.modified_count == 0:
            return None
        return await self.products.find_one({"_id": oid}, session=session)

    async def give_back_stock(self, session: AsyncClientSession, product_id: str, quantity: int) -> Document | None:
        """Add ``quantity`` to a product's stock (a deleted one too); the product after."""
        oid = object_id(product_id)
        if oid is None:
            return None
        await self.products.update_one({"_id": oid}, {"$inc": {"stock": quantity, **BUMP}}, session=session)
        return await self.products.find_one({"_id": oid}, session=session)

    # reservations, keyed by order id
    async def reservation(self, order_id: str) -> Document | None:
        return await self.reservations.find_one({"_id": order_id})

    async def insert_reservation(self, session: AsyncClientSession, reservation: Document) -> None:
        await self.reservations.insert_one(reservation, session=session)

    async def move_reservation(
        self, session: AsyncClientSession, order_id: str, from_states: list[str], changes: Document
    ) -> Document | None:
        """Set ``changes`` if the reservation is in one of ``from_states``; the old document."""
        reservation = await self.reservations.find_one({"_id": order_id}, session=session)
        if reservation is None or reservation["status"] not in from_states:
            return None
        result = await self.reservations.update_one(
            {"_id": order_id, "status": reservation["status"]}, {"$set": changes}, session=session
        )
        return reservation if result.modified_count == 1 else None

    async def insert_released_marker(self, session: AsyncClientSession, marker: Document) -> None:
        await self.reservations.update_one(
            {"_id": marker["_id"]}, {"$setOnInsert": marker}, upsert=True, session=session
        )

    async def category_exists(self, name: str) -> bool:
        return await self.products.find_one({"category": name, **ACTIVE}, {"_id": 1}) is not None
