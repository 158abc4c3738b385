"""Units of work (core/store.py) against the embedded MongoDB: all or nothing, nested ones
join, events go out only on commit, and a unit of work on one database never captures
another's operations."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from bson import ObjectId
from pydantic import Field
from pymongo import AsyncMongoClient

from winkit.core.event_contracts import StockChanged
from winkit.core.outbox import Outbox
from winkit.core.store import Store, StoredModel, session_for


class Shelf(StoredModel):
    id: ObjectId = Field(alias="_id")
    name: str
    stock: int
    checked_at: datetime | None = None


class ShelfStore(Store):
    """A store as a service writes one: documents in, models out, the session never asked for."""

    async def put(self, shelf: Shelf) -> None:
        await self.db["shelves"].insert_one(shelf.to_document(), session=self.session)

    async def take(self, shelf_id: ObjectId, quantity: int) -> None:
        await self.db["shelves"].update_one({"_id": shelf_id}, {"$inc": {"stock": -quantity}}, session=self.session)

    async def get(self, shelf_id: ObjectId) -> Shelf | None:
        return Shelf.from_optional(await self.db["shelves"].find_one({"_id": shelf_id}, session=self.session))


class Refused(Exception):
    pass


def changed(stock: int) -> StockChanged:
    return StockChanged(product_id="p1", stock=stock, delta=-1, reason="order", order_id=None)


@pytest.fixture
async def stores(mongodb_uri: str) -> AsyncIterator[tuple[ShelfStore, ShelfStore, Outbox]]:
    """A store with an outbox on one database, and a second on another database."""
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongodb_uri, tz_aware=True)
    names = [f"winkit_uow_{uuid.uuid4().hex[:8]}" for _ in range(2)]
    outbox = Outbox(client[names[0]], "test")
    try:
        for name in names:  # collections exist before a transaction writes to them
            await client[name].create_collection("shelves")
        await client[names[0]].create_collection("outbox")
        yield ShelfStore(client[names[0]], outbox), ShelfStore(client[names[1]]), outbox
    finally:
        for name in names:
            await client.drop_database(name)
        await client.close()


async def test_a_unit_of_work_commits_its_writes_and_events_together(stores) -> None:
    store, _, outbox = stores
    shelf = Shelf(_id=ObjectId(), name="milk", stock=5)

    async def work() -> str:
        await store.put(shelf)
        await store.take(shelf.id, 1)
        await store.announce(changed(4))
        return "done"

    assert await store.atomically(work) == "done"
    stored = await store.get(shelf.id)
    assert stored is not None
    assert stored.stock == 4
    handed_over, dropped = outbox.take_committed()
    assert [event["data"]["stock"] for event in handed_over] == [4]
    assert dropped is False
    assert await outbox.collection.count_documents({}) == 1


async def test_a_failed_unit_of_work_leaves_nothing_behind(stores) -> None:
    store, _, outbox = stores
    shelf = Shelf(_id=ObjectId(), name="milk", stock=5)

    async def work() -> None:
        await store.put(shelf)
        await store.announce(changed(5))
        raise Refused

    with pytest.raises(Refused):
        await store.atomically(work)
    assert await store.get(shelf.id) is None
    assert outbox.take_committed() == ([], False)
    assert await outbox.collection.count_documents({}) == 0


async def test_a_nested_unit_of_work_joins_the_one_running(stores) -> None:
    """The inner one commits nothing on its own: the outer one failing undoes both."""
    store, _, outbox = stores
    first, second = Shelf(_id=ObjectId(), name="milk", stock=5), Shelf(_id=ObjectId(), name="eggs", stock=6)
    sessions = []

    async def inner() -> None:
        sessions.append(store.session)
        await store.put(second)

    async def outer() -> None:
        sessions.append(store.session)
        await store.put(first)
        await store.atomically(inner)
        raise Refused

    with pytest.raises(Refused):
        await store.atomically(outer)
    assert sessions[0] is not None
    assert sessions[0] is sessions[1]
    assert await store.get(first.id) is None
    assert await store.get(second.id) is None
    assert await outbox.collection.count_documents({}) == 0


async def test_a_unit_of_work_on_one_database_does_not_capture_another(stores) -> None:
    """Services share a process in tests: one service's transaction must not swallow
    another's writes (they would vanish with its rollback)."""
    store, elsewhere, _ = stores
    shelf = Shelf(_id=ObjectId(), name="milk", stock=5)

    async def work() -> None:
        assert session_for(elsewhere.db) is None
        assert elsewhere.session is None
        await elsewhere.put(shelf)
        raise Refused

    with pytest.raises(Refused):
        await store.atomically(work)
    assert await elsewhere.get(shelf.id) is not None


async def test_units_of_work_running_at_once_keep_their_own_sessions(stores) -> None:
    store, _, _ = stores
    shelves = [Shelf(_id=ObjectId(), name=f"shelf {n}", stock=n) for n in range(8)]
    sessions: dict[ObjectId, list[Any]] = {shelf.id: [] for shelf in shelves}

    async def work(shelf: Shelf) -> None:
        sessions[shelf.id].append(store.session)
        await asyncio.sleep(0)  # the others run in between
        await store.put(shelf)
        sessions[shelf.id].append(store.session)

    await asyncio.gather(*(store.atomically(lambda s=shelf: work(s)) for shelf in shelves))
    for before, after in sessions.values():
        assert before is not None
        assert before is after
    assert len({id(before) for before, _ in sessions.values()}) == len(shelves)
    assert all([await store.get(shelf.id) for shelf in shelves])
    assert store.session is None


async def test_events_are_announced_only_inside_a_unit_of_work(stores) -> None:
    store, elsewhere, _ = stores
    with pytest.raises(RuntimeError):
        await store.announce(changed(1))
    # A store without an outbox has nowhere to announce to, even inside one.
    with pytest.raises(RuntimeError):
        await elsewhere.atomically(lambda: elsewhere.announce(changed(1)))


def test_a_stored_model_keeps_the_document_shape() -> None:
    at = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)
    doc = {"_id": ObjectId(), "name": "milk", "stock": 3, "checked_at": at}
    shelf = Shelf.from_document({**doc, "added_by_a_newer_release": True})
    assert shelf.to_document() == doc
    assert list(shelf.to_document()) == ["_id", "name", "stock", "checked_at"]
    assert Shelf.from_optional(None) is None
