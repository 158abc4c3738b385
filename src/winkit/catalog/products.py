"""Catalog domain: searching, editing and seeding products. Prices are integer paise."""

from __future__ import annotations

import re
import secrets
from datetime import UTC, datetime
from typing import Any

from bson import ObjectId
from pymongo.asynchronous.client_session import AsyncClientSession

from winkit.catalog import demo_data
from winkit.catalog.stock import stock_changed
from winkit.catalog.store import CatalogStore, SkuTaken
from winkit.platform.database import Document
from winkit.platform.errors import Conflict, NotFound
from winkit.platform.events import Outbox, transact
from winkit.platform.money import CURRENCY, to_paise, to_rupees


def slugify(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:60] or "product"


def name_key(name: str) -> str:
    return name.casefold()


def product_view(doc: Document) -> dict[str, Any]:
    """A stored product as the API shows it (image_url is added by the route)."""
    return {
        "id": str(doc["_id"]),
        "sku": doc["sku"],
        "name": doc["name"],
        "category": doc["category"],
        "price": to_rupees(doc["price_paise"]),
        "price_paise": doc["price_paise"],
        "currency": doc.get("currency", CURRENCY),
        "unit": doc["unit"],
        "stock": doc["stock"],
        "description": doc.get("description", ""),
        "updated_at": doc["updated_at"],
    }


def search_filter(category: str | None, q: str | None, ids: list[str] | None = None) -> Document:
    query: Document = {}
    if ids is not None:
        query["_id"] = {"$in": [ObjectId(i) for i in ids]}
    if category is not None:
        query["category"] = category
    if q:
        # The shopper's text is matched literally, never as a pattern.
        query["name_key"] = {"$regex": re.escape(name_key(q.strip()))}
    return query


class Catalog:
    def __init__(self, store: CatalogStore, outbox: Outbox) -> None:
        self._store = store
        self._outbox = outbox

    async def search(
        self, *, category: str | None, q: str | None, limit: int | None, offset: int, ids: list[str] | None = None
    ) -> list[dict[str, Any]]:
        docs = await self._store.find(search_filter(category, q, ids), limit=limit, offset=offset)
        return [product_view(d) for d in docs]

    async def _get_doc(self, product_id: str) -> Document:
        doc = await self._store.get(product_id)
        if doc is None:
            raise NotFound(f"No product with id {product_id!r}.")
        return doc

    async def get(self, product_id: str) -> dict[str, Any]:
        return product_view(await self._get_doc(product_id))

    async def create(self, fields: dict[str, Any]) -> dict[str, Any]:
        now = datetime.now(UTC)
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
        try:
            return product_view(await self._store.insert(doc))
        except SkuTaken as exc:
            raise Conflict(f"A product with sku {sku!r} already exists.") from exc

    async def update(self, product_id: str, fields: dict[str, Any]) -> dict[str, Any]:
        changes = dict(fields)
        if "price" in changes:
            changes["price_paise"] = to_paise(changes.pop("price"))
        if "name" in changes:
            changes["name_key"] = name_key(changes["name"])
        changes["updated_at"] = datetime.now(UTC)

        async def change(session: AsyncClientSession) -> Document:
            before = await self._store.get(product_id, session=session)
            doc = await self._store.update(product_id, changes, session=session)
            if before is None or doc is None:
                raise NotFound(f"No product with id {product_id!r}.")
            if "stock" in changes and doc["stock"] != before["stock"]:
                delta = doc["stock"] - before["stock"]
                await self._outbox.add(session, stock_changed(product_id, doc["stock"], delta, "adjusted", None))
            return doc

        return product_view(await transact(self._store.db, self._outbox, change))

    async def delete(self, product_id: str) -> None:
        # Soft delete: past orders still name the product, but it leaves the catalog.
        if await self._store.update(product_id, {"deleted_at": datetime.now(UTC)}) is None:
            raise NotFound(f"No product with id {product_id!r}.")

    async def categories(self) -> list[dict[str, Any]]:
        return await self._store.category_counts()

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
        now = datetime.now(UTC)
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
        return await self._store.add_missing(docs)
