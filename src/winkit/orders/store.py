"""MongoDB access for the cart & order service (database ``winkit_orders``)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from bson import ObjectId
from pymongo import ASCENDING, DESCENDING, DeleteOne, IndexModel
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from winkit.core.database import Document, object_id


class LineLimit(Exception):
    """Adding would take a cart line past its maximum quantity."""


class DuplicateOrder(Exception):
    pass


class CartBusy(Exception):
    """Another checkout of this cart is under way."""


class OrdersStore:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.db = db
        self.cart = db["cart_items"]
        self.checkouts = db["cart_checkouts"]
        self.orders = db["orders"]

    async def ensure_indexes(self) -> None:
        await self.cart.create_indexes([IndexModel([("user_id", ASCENDING), ("product_id", ASCENDING)], unique=True)])
        await self.orders.create_indexes(
            [
                IndexModel([("user_id", ASCENDING), ("created_at", DESCENDING)]),
                # Every order has one: "key:<user>:<Idempotency-Key>" or "order:<id>".
                IndexModel([("idempotency_key", ASCENDING)], unique=True),
                IndexModel([("status", ASCENDING), ("created_at", ASCENDING)]),
            ]
        )

    # cart
    async def cart_lines(self, user_id: str) -> list[Document]:
        return await self.cart.find({"user_id": user_id}).sort("added_at", ASCENDING).to_list()

    async def add_to_line(self, line: Document, quantity: int, max_quantity: int) -> None:
        """Add ``quantity`` to the user's line for the product, creating it if needed,
        unless the line would exceed ``max_quantity`` (LineLimit)."""
        key = {"user_id": line["user_id"], "product_id": line["product_id"]}
        try:
            await self.cart.update_one(
                {**key, "quantity": {"$lte": max_quantity - quantity}},
                {
                    "$inc": {"quantity": quantity},
                    "$set": {"name": line["name"], "price_paise": line["price_paise"]},
                    "$setOnInsert": {"added_at": line["added_at"]},
                },
                upsert=True,
            )
        except DuplicateKeyError as exc:
            # The line exists but is too full: the filter missed and the upsert collided.
            raise LineLimit from exc

    async def refresh_line(self, user_id: str, product_id: str, name: str, price_paise: int) -> None:
        """Store the name and price the shopper is being shown now."""
        await self.cart.update_one(
            {"user_id": user_id, "product_id": product_id}, {"$set": {"name": name, "price_paise": price_paise}}
        )

    async def reduce_line(self, user_id: str, product_id: str, quantity: int | None) -> bool:
        """Take ``quantity`` off a line (all of it when None or when it would reach zero)."""
        key = {"user_id": user_id, "product_id": product_id}
        if quantity is not None:
            result = await self.cart.update_one(
                {**key, "quantity": {"$gt": quantity}}, {"$inc": {"quantity": -quantity}}
            )
            if result.modified_count == 1:
                return True
        return (await self.cart.delete_one(key)).deleted_count == 1

    async def remove_ordered_lines(self, session: AsyncClientSession, lines: list[Document]) -> None:
        # Only the lines as they were ordered: a line changed meanwhile stays in the cart.
        # One command for all (an $or filter would make SecantusDB scan the collection).
        deletes = [DeleteOne({"_id": line["_id"], "quantity": line["quantity"]}) for line in lines]
        await self.cart.bulk_write(deletes, ordered=False, session=session)

    # one checkout at a time per cart: a document per user naming the order being placed
    async def start_checkout(self, user_id: str, order_id: ObjectId, now: datetime, stale_before: datetime) -> None:
        """Take the user's cart for ``order_id``, unless another checkout holds it (CartBusy);
        a hold older than ``stale_before`` was left by a crash and is taken over."""
        try:
            await self.checkouts.update_one(
                {"_id": user_id, "$or": [{"order_id": None}, {"since": {"$lt": stale_before}}]},
                {"$set": {"order_id": order_id, "since": now}},
                upsert=True,
            )
        except DuplicateKeyError as exc:
            # Held: the filter missed and the upsert collided with the holder's document.
            raise CartBusy from exc

    async def end_checkout(self, user_id: str, order_id: ObjectId, session: AsyncClientSession | None = None) -> None:
        await self.checkouts.update_one(
            {"_id": user_id, "order_id": order_id}, {"$set": {"order_id": None}}, session=session
        )

    # orders
    async def insert_order(self, order: Document) -> None:
        try:
            await self.orders.insert_one(order)
        except DuplicateKeyError as exc:
            raise DuplicateOrder from exc

    async def order_by_key(self, idempotency_key: str) -> Document | None:
        return await self.orders.find_one({"idempotency_key": idempotency_key})

    async def order(self, order_id: str, session: AsyncClientSession | None = None) -> Document | None:
        oid = object_id(order_id)
        return None if oid is None else await self.orders.find_one({"_id": oid}, session=session)

    async def orders_of(self, user_id: str, statuses: Sequence[str]) -> list[Document]:
        cursor = self.orders.find({"user_id": user_id, "status": {"$in": statuses}})
        return await cursor.sort("created_at", DESCENDING).to_list()

    async def move_order(
        self,
        order_id: ObjectId,
        from_states: Sequence[str],
        changes: dict[str, Any],
        session: AsyncClientSession | None = None,
        **match: Any,
    ) -> bool:
        result = await self.orders.update_one(
            {"_id": order_id, "status": {"$in": list(from_states)}, **match}, {"$set": changes}, session=session
        )
        return result.modified_count == 1

    async def delete_pending(self, order_id: ObjectId, status: str) -> bool:
        """Remove an order never placed, if it is still in ``status``."""
        return (await self.orders.delete_one({"_id": order_id, "status": status})).deleted_count == 1

    async def stale_pending(self, statuses: list[str], before: datetime) -> list[Document]:
        return await self.orders.find({"status": {"$in": statuses}, "created_at": {"$lt": before}}).to_list()
