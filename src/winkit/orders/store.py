"""MongoDB access for the cart & order service (database ``winkit_orders``)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from datetime import datetime

import pymongo
from bson import ObjectId
from pymongo import ASCENDING, DESCENDING, DeleteOne, IndexModel
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError, PyMongoError

from winkit.core.database import Document, object_id
from winkit.core.order_status import OrderStatus
from winkit.core.outbox import Outbox
from winkit.core.store import Store
from winkit.orders.models import CartItem, CheckoutHold, OrderChange, OrderRecord, Unplaced


class LineLimit(Exception):
    """Adding would take a cart line past its maximum quantity."""


class DuplicateOrder(Exception):
    pass


class CartBusy(Exception):
    """Another checkout of this cart is under way."""


class StoreUnavailable(Exception):
    """An operation under ``OrdersStore.time_limit`` did not finish in time, or the database
    failed it: it may or may not have taken effect."""


class OrdersStore(Store):
    def __init__(self, db: AsyncDatabase[Document], outbox: Outbox) -> None:
        super().__init__(db, outbox)
        self.cart = db["cart_items"]
        self.checkouts = db["cart_checkouts"]
        self.orders = db["orders"]

    async def ensure_indexes(self) -> None:
        await self.cart.create_indexes([IndexModel([("user_id", ASCENDING), ("product_id", ASCENDING)], unique=True)])
        await self.orders.create_indexes(
            [
                IndexModel([("user_id", ASCENDING), ("created_at", DESCENDING)]),
                IndexModel([("idempotency_key", ASCENDING)], unique=True),
                IndexModel([("status", ASCENDING), ("created_at", ASCENDING)]),
            ]
        )

    @contextlib.contextmanager
    def time_limit(self, seconds: float) -> Iterator[None]:
        """Give the operations of this store inside ``seconds`` in all (a unit of work with
        its retries counts as one); past that, or if the database fails them, they raise
        StoreUnavailable."""
        try:
            with pymongo.timeout(seconds):
                yield
        except PyMongoError as exc:
            raise StoreUnavailable(f"{type(exc).__name__}: {exc}") from exc

    # cart
    async def cart_items(self, user_id: str) -> list[CartItem]:
        cursor = self.cart.find({"user_id": user_id}, session=self.session).sort("added_at", ASCENDING)
        return [CartItem.from_document(doc) for doc in await cursor.to_list()]

    async def add_to_cart(self, item: CartItem, max_quantity: int) -> None:
        """Add ``item`` (its quantity, at its name and price) to the shopper's line for its
        product, creating the line if needed, unless the line would exceed ``max_quantity``
        (LineLimit)."""
        try:
            await self.cart.update_one(
                {
                    "user_id": item.user_id,
                    "product_id": item.product_id,
                    "quantity": {"$lte": max_quantity - item.quantity},
                },
                {
                    "$inc": {"quantity": item.quantity},
                    "$set": {"name": item.name, "price_paise": item.price_paise},
                    "$setOnInsert": {"added_at": item.added_at},
                },
                upsert=True,
                session=self.session,
            )
        except DuplicateKeyError as exc:
            # The line exists but is too full: the filter missed and the upsert collided.
            raise LineLimit from exc

    async def refresh_item(self, item: CartItem) -> None:
        """Store the name and price the shopper is being shown now."""
        await self.cart.update_one(
            {"user_id": item.user_id, "product_id": item.product_id},
            {"$set": {"name": item.name, "price_paise": item.price_paise}},
            session=self.session,
        )

    async def reduce_line(self, user_id: str, product_id: str, quantity: int | None) -> bool:
        """Take ``quantity`` off a line (all of it when None or when it would reach zero)."""
        key = {"user_id": user_id, "product_id": product_id}
        if quantity is not None:
            result = await self.cart.update_one(
                {**key, "quantity": {"$gt": quantity}}, {"$inc": {"quantity": -quantity}}, session=self.session
            )
            if result.modified_count == 1:
                return True
        return (await self.cart.delete_one(key, session=self.session)).deleted_count == 1

    async def remove_ordered_items(self, items: list[CartItem]) -> None:
        # Only the lines as they were ordered: a line changed meanwhile stays in the cart.
        # One command for all (an $or filter would make SecantusDB scan the collection).
        deletes = [DeleteOne({"_id": item.id, "quantity": item.quantity}) for item in items]
        await self.cart.bulk_write(deletes, ordered=False, session=self.session)

    # one checkout at a time per cart
    async def start_checkout(self, hold: CheckoutHold, stale_before: datetime) -> None:
        """Take the shopper's cart for ``hold``'s order, unless another checkout holds it
        (CartBusy); a hold older than ``stale_before`` was left by a crash and is taken over."""
        try:
            await self.checkouts.update_one(
                {"_id": hold.user_id, "$or": [{"order_id": None}, {"since": {"$lt": stale_before}}]},
                {"$set": hold.model_dump(exclude={"user_id"})},
                upsert=True,
                session=self.session,
            )
        except DuplicateKeyError as exc:
            # Held: the filter missed and the upsert collided with the holder's document.
            raise CartBusy from exc

    async def end_checkout(self, user_id: str, order_id: ObjectId) -> None:
        await self.checkouts.update_one(
            {"_id": user_id, "order_id": order_id}, {"$set": {"order_id": None}}, session=self.session
        )

    # orders
    async def insert_order(self, order: OrderRecord) -> None:
        try:
            await self.orders.insert_one(order.to_document(), session=self.session)
        except DuplicateKeyError as exc:
            raise DuplicateOrder from exc

    async def order_by_key(self, idempotency_key: str) -> OrderRecord | None:
        doc = await self.orders.find_one({"idempotency_key": idempotency_key}, session=self.session)
        return OrderRecord.from_optional(doc)

    async def order(self, order_id: str) -> OrderRecord | None:
        oid = object_id(order_id)
        if oid is None:
            return None
        return OrderRecord.from_optional(await self.orders.find_one({"_id": oid}, session=self.session))

    async def orders_of(self, user_id: str, statuses: Sequence[OrderStatus]) -> list[OrderRecord]:
        cursor = self.orders.find({"user_id": user_id, "status": {"$in": list(statuses)}}, session=self.session)
        return [OrderRecord.from_document(doc) for doc in await cursor.sort("created_at", DESCENDING).to_list()]

    async def move_order(
        self, order_id: ObjectId, from_states: Sequence[OrderStatus | Unplaced], change: OrderChange
    ) -> bool:
        """Apply ``change`` if the order is in one of ``from_states``; whether it was."""
        result = await self.orders.update_one(
            {"_id": order_id, "status": {"$in": list(from_states)}},
            {"$set": change.to_document()},
            session=self.session,
        )
        return result.modified_count == 1

    async def delete_unplaced(self, order_id: ObjectId, status: Unplaced) -> bool:
        """Remove an order never placed, if it is still in ``status``."""
        result = await self.orders.delete_one({"_id": order_id, "status": status}, session=self.session)
        return result.deleted_count == 1

    async def stale_unplaced(self, before: datetime) -> list[OrderRecord]:
        """Orders not placed that were created before ``before``."""
        cursor = self.orders.find(
            {"status": {"$in": list(Unplaced)}, "created_at": {"$lt": before}}, session=self.session
        )
        return [OrderRecord.from_document(doc) for doc in await cursor.to_list()]
