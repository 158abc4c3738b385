"""Catalog domain: editing and seeding products. Prices are integer paise.

Every write announces itself with ``product.changed`` in the same transaction, and shows
at once in this replica's read model; other replicas hear the event (read_model_sync).
"""

from __future__ import annotations

import re
import secrets
from typing import Any

from pymongo.asynchronous.client_session import AsyncClientSession

from winkit.catalog import demo_data
from winkit.catalog.read_model import CatalogReadModel, name_key
from winkit.catalog.stock import stock_changed
from winkit.catalog.store import VERSION, CatalogStore, SkuTaken
from winkit.core.database import Document, stored_now
from winkit.core.errors import Conflict, NotFound
from winkit.core.event_contracts import ProductChanged
from winkit.core.money import CURRENCY, to_paise
from winkit.core.outbox import Change, Outbox, new_event, transact

PRODUCT_CHANGED = ProductChanged.TYPE


def slugify(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:60] or "product"


def product_changed(doc: Document) -> Document:
    """Says which product changed and its version after: readers re-read it if they hold less."""
    return new_event(ProductChanged(product_id=str(doc["_id"]), version=doc[VERSION]), "catalog")


class Catalog:
    def __init__(self, store: CatalogStore, outbox: Outbox, read_model: CatalogReadModel) -> None:
        self._store = store
        self._outbox = outbox
        self._read_model = read_model

    async def _get_doc(self, product_id: str) -> Document:
        doc = await self._store.get(product_id)
        if doc is None:
            raise NotFound(f"No product with id {product_id!r}.")
        return doc

    async def _written(self, change: Change) -> Document:
        """Run a write that returns the product after it, then show that product here."""
        doc: Document = await transact(self._store.db, self._outbox, change)
        self._read_model.apply(doc)
        return doc

    async def create(self, fields: dict[str, Any]) -> Document:
        now = stored_now()
        price_paise = to_paise(fields.pop("price"))
        sku = fields.pop("sku", None) or f"{slugify(fields['name'])}-{secrets.token_hex(3)}"
        doc = {
            **fields,
            "sku": sku,
            "name_key": name_key(fields["name"]),
            "price_paise": price_paise,
            "currency": CURRENCY,
            "created_at": now,
            "updated_at": now,
            "deleted_at": None,
        }

        async def insert(session: AsyncClientSession) -> Document:
            created = await self._store.insert(doc, session=session)
            await self._outbox.add(session, product_changed(created))
            return created

        try:
            return await self._written(insert)
        except SkuTaken as exc:
            raise Conflict(f"A product with sku {sku!r} already exists.") from exc

    async def update(self, product_id: str, fields: dict[str, Any]) -> Document:
        changes = dict(fields)
        if "price" in changes:
            changes["price_paise"] = to_paise(changes.pop("price"))
        if "name" in changes:
            changes["name_key"] = name_key(changes["name"])
        changes["updated_at"] = stored_now()

        async def change(session: AsyncClientSession) -> Document:
            before = await self._store.get(product_id, session=session)
            doc = await self._store.update(product_id, changes, session=session)
            if before is None or doc is None:
                raise NotFound(f"No product with id {product_id!r}.")
            events = [product_changed(doc)]
            if "stock" in changes and doc["stock"] != before["stock"]:
                delta = doc["stock"] - before["stock"]
                events.append(stock_changed(product_id, doc["stock"], delta, "adjusted", None))
            await self._outbox.add(session, *events)
            return doc

        return await self._written(change)

    async def delete(self, product_id: str) -> None:
        # Soft delete: past orders still name the product, but it leaves the catalog.
        async def remove(session: AsyncClientSession) -> Document:
            doc = await self._store.update(product_id, {"deleted_at": stored_now()}, session=session)
            if doc is None:
                raise NotFound(f"No product with id {product_id!r}.")
            await self._outbox.add(session, product_changed(doc))
            return doc

        await self._written(remove)

    async def product_image(self, product_id: str) -> tuple[str, str, str]:
        doc = await self._get_doc(product_id)
        return doc["name"], doc["category"], doc["unit"]

    async def require_category(self, name: str) -> None:
        if not await self._store.category_exists(name):
            raise NotFound(f"No category named {name!r}.")

    async def seed_demo(self) -> int:
        """Fill an empty catalog with the demo products; a catalog in use is left alone."""
        if not await self._store.is_empty():
            return 0
        now = stored_now()
        docs = [
            {
                "sku": p.sku,
                "name": p.name,
                "name_key": name_key(p.name),
                "category": p.category,
                "price_paise": p.price_paise,
                "currency": CURRENCY,
                "unit": p.unit,
                "stock": p.stock,
                "description": p.description,
                "created_at": now,
                "updated_at": now,
                "deleted_at": None,
            }
            for p in demo_data.PRODUCTS
        ]

        async def add(session: AsyncClientSession) -> list[Document]:
            added = await self._store.add_missing(docs, session=session)
            await self._outbox.add(session, *(product_changed(doc) for doc in added))
            return added

        return len(await transact(self._store.db, self._outbox, add))
