"""MongoDB access for the catalog service (database ``winkit_catalog``): products and
stock reservations, as ``catalog.models``. Every operation runs in the unit of work
running, if any (``core.store``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime

from bson import ObjectId
from pymongo import ASCENDING, IndexModel, UpdateOne
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from winkit.catalog.models import ProductEdit, ProductRecord, ReservationStatus, StockReservation
from winkit.core.database import Document, object_id
from winkit.core.outbox import Outbox
from winkit.core.store import Store

ACTIVE: Document = {"deleted_at": None}
# Every write to a product raises its version by one (a new product is at 1), so whoever
# holds a copy can tell a newer document from an older one.
VERSION = "version"
BUMP: Document = {VERSION: 1}
ALL_PRODUCTS_BATCH = 200


class SkuTaken(Exception):
    pass


class ReservationExists(Exception):
    """The order has a reservation already: another request for it made one meanwhile."""


def _at_first_version(product: ProductRecord) -> ProductRecord:
    return product.model_copy(update=BUMP)


class CatalogStore(Store):
    def __init__(self, db: AsyncDatabase[Document], outbox: Outbox) -> None:
        super().__init__(db, outbox)
        self._products = db["products"]
        self._reservations = db["reservations"]

    async def ensure_indexes(self) -> None:
        await self._products.create_indexes(
            [
                IndexModel([("sku", ASCENDING)], unique=True),
                IndexModel([("category", ASCENDING), ("name_key", ASCENDING)]),
                IndexModel([("name_key", ASCENDING)]),
            ]
        )

    async def is_empty(self) -> bool:
        return await self._products.find_one({}, {"_id": 1}, session=self.session) is None

    async def add_missing(self, products: list[ProductRecord]) -> list[ProductRecord]:
        """Insert products whose sku is not there yet (safe to repeat); those inserted."""
        new = [_at_first_version(p) for p in products]
        ops = [
            UpdateOne({"sku": p.sku}, {"$setOnInsert": p.model_dump(by_alias=True, exclude={"id"})}, upsert=True)
            for p in new
        ]
        result = await self._products.bulk_write(ops, ordered=False, session=self.session)
        upserted = result.upserted_ids or {}
        return [new[index].model_copy(update={"id": oid}) for index, oid in upserted.items()]

    async def all_products(self) -> AsyncIterator[ProductRecord]:
        """Every product, deleted ones too, one at a time."""
        # Small batches: the driver decodes each batch in one go, holding up the event loop.
        async for doc in self._products.find({}, batch_size=ALL_PRODUCTS_BATCH, session=self.session):
            yield ProductRecord.from_document(doc)

    async def _product(self, oid: ObjectId) -> ProductRecord | None:
        return ProductRecord.from_optional(await self._products.find_one({"_id": oid}, session=self.session))

    async def get(self, product_id: str) -> ProductRecord | None:
        """A product for sale (not deleted)."""
        oid = object_id(product_id)
        if oid is None:
            return None
        return ProductRecord.from_optional(await self._products.find_one({"_id": oid, **ACTIVE}, session=self.session))

    async def insert(self, product: ProductRecord) -> ProductRecord:
        product = _at_first_version(product)
        try:
            await self._products.insert_one(product.to_document(), session=self.session)
        except DuplicateKeyError as exc:
            raise SkuTaken(product.sku) from exc
        return product

    async def update(self, product_id: str, edit: ProductEdit) -> ProductRecord | None:
        """Apply ``edit`` to a product for sale; the product after, or None if there is none."""
        oid = object_id(product_id)
        if oid is None:
            return None
        # update_one + read by _id: SecantusDB scans the collection for find_one_and_update
        # with a filter beyond _id.
        result = await self._products.update_one(
            {"_id": oid, **ACTIVE}, {"$set": edit.to_document(), "$inc": BUMP}, session=self.session
        )
        if result.matched_count == 0:
            return None
        return await self._product(oid)

    async def products_by_ids(self, product_ids: list[str]) -> list[ProductRecord]:
        oids = [oid for oid in map(object_id, product_ids) if oid is not None]
        found = await self._products.find({"_id": {"$in": oids}}, session=self.session).to_list()
        return [ProductRecord.from_document(doc) for doc in found]

    # stock
    async def take_stock(self, product_id: str, quantity: int, price_paise: int | None = None) -> ProductRecord | None:
        """Decrement stock if enough is there (and the price is still ``price_paise``, when
        given); the product after, or None when short, repriced or unknown."""
        oid = object_id(product_id)
        if oid is None:
            return None
        price = {} if price_paise is None else {"price_paise": price_paise}
        result = await self._products.update_one(
            {"_id": oid, "stock": {"$gte": quantity}, **price, **ACTIVE},
            {"$inc": {"stock": -quantity, **BUMP}},
            session=self.session,
        )
        if result.modified_count == 0:
            return None
        return await self._product(oid)

    async def give_back_stock(self, product_id: str, quantity: int) -> ProductRecord | None:
        """Add ``quantity`` to a product's stock (a deleted one too); the product after."""
        oid = object_id(product_id)
        if oid is None:
            return None
        await self._products.update_one({"_id": oid}, {"$inc": {"stock": quantity, **BUMP}}, session=self.session)
        return await self._product(oid)

    async def category_exists(self, name: str) -> bool:
        found = await self._products.find_one({"category": name, **ACTIVE}, {"_id": 1}, session=self.session)
        return found is not None

    # reservations, keyed by order id
    async def reservation(self, order_id: str) -> StockReservation | None:
        return StockReservation.from_optional(
            await self._reservations.find_one({"_id": order_id}, session=self.session)
        )

    async def insert_reservation(self, reservation: StockReservation) -> None:
        """Raises ReservationExists if the order has one already."""
        try:
            await self._reservations.insert_one(reservation.to_document(), session=self.session)
        except DuplicateKeyError as exc:
            raise ReservationExists(reservation.order_id) from exc

    async def move_reservation(
        self, order_id: str, from_states: list[ReservationStatus], to: ReservationStatus, at: datetime
    ) -> StockReservation | None:
        """Move the reservation to ``to`` (at ``at``) if it is in one of ``from_states``; it as
        it was before, or None if it was not moved."""
        reservation = await self.reservation(order_id)
        if reservation is None or reservation.status not in from_states:
            return None
        result = await self._reservations.update_one(
            {"_id": order_id, "status": reservation.status},
            {"$set": {"status": to, "updated_at": at}},
            session=self.session,
        )
        return reservation if result.modified_count == 1 else None

    async def insert_released_marker(self, marker: StockReservation) -> None:
        """Keep ``marker`` unless the order has a reservation already."""
        await self._reservations.update_one(
            {"_id": marker.order_id}, {"$setOnInsert": marker.to_document()}, upsert=True, session=self.session
        )
