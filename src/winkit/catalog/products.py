"""Catalog domain: editing and seeding products. Prices are integer paise.

Every write announces itself with ``product.changed`` in the same unit of work, and shows
at once in this replica's read model; other replicas hear the event (read_model_sync).
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Awaitable, Callable
from datetime import datetime

from winkit.catalog import demo_data
from winkit.catalog.models import ProductEdit, ProductRecord
from winkit.catalog.read_model import CatalogReadModel, name_key
from winkit.catalog.schemas import ProductCreate, ProductUpdate
from winkit.catalog.store import CatalogStore, SkuTaken
from winkit.core.database import stored_now
from winkit.core.errors import Conflict, NotFound
from winkit.core.event_contracts import EventData, ProductChanged, StockChanged
from winkit.core.money import CURRENCY, to_paise


def slugify(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:60] or "product"


def _new_product(
    *, sku: str, name: str, category: str, price_paise: int, unit: str, stock: int, description: str, at: datetime
) -> ProductRecord:
    """A product for sale from ``at``, not stored yet."""
    return ProductRecord(
        sku=sku,
        name=name,
        name_key=name_key(name),
        category=category,
        price_paise=price_paise,
        currency=CURRENCY,
        unit=unit,
        stock=stock,
        description=description,
        created_at=at,
        updated_at=at,
        deleted_at=None,
    )


def _edit(changes: ProductUpdate) -> ProductEdit:
    """What a staff member's changes set on the stored product."""
    return ProductEdit(
        name=changes.name,
        name_key=None if changes.name is None else name_key(changes.name),
        category=changes.category,
        price_paise=None if changes.price is None else to_paise(changes.price),
        unit=changes.unit,
        stock=changes.stock,
        description=changes.description,
        updated_at=stored_now(),
    )


def _changed(product: ProductRecord) -> ProductChanged:
    """Says which product changed and its version after: readers re-read it if they hold less."""
    return ProductChanged(product_id=str(product.id), version=product.version)


def _no_product(product_id: str) -> NotFound:
    return NotFound(f"No product with id {product_id!r}.")


class Catalog:
    def __init__(self, store: CatalogStore, read_model: CatalogReadModel) -> None:
        self._store = store
        self._read_model = read_model

    async def _written(self, write: Callable[[], Awaitable[ProductRecord]]) -> ProductRecord:
        """Run a write that returns the product after it as one unit of work, then show
        that product here."""
        product = await self._store.atomically(write)
        self._read_model.apply(product)
        return product

    async def product(self, product_id: str) -> ProductRecord:
        """A product for sale."""
        product = await self._store.get(product_id)
        if product is None:
            raise _no_product(product_id)
        return product

    async def create(self, new: ProductCreate) -> ProductRecord:
        sku = new.sku or f"{slugify(new.name)}-{secrets.token_hex(3)}"
        product = _new_product(
            sku=sku,
            name=new.name,
            category=new.category,
            price_paise=to_paise(new.price),
            unit=new.unit,
            stock=new.stock,
            description=new.description,
            at=stored_now(),
        )

        async def insert() -> ProductRecord:
            created = await self._store.insert(product)
            await self._store.announce(_changed(created))
            return created

        try:
            return await self._written(insert)
        except SkuTaken as exc:
            raise Conflict(f"A product with sku {sku!r} already exists.") from exc

    async def update(self, product_id: str, changes: ProductUpdate) -> ProductRecord:
        edit = _edit(changes)

        async def change() -> ProductRecord:
            before = await self._store.get(product_id)
            after = await self._store.update(product_id, edit)
            if before is None or after is None:
                raise _no_product(product_id)
            events: list[EventData] = [_changed(after)]
            if edit.stock is not None and after.stock != before.stock:
                delta = after.stock - before.stock
                events.append(
                    StockChanged(
                        product_id=product_id, stock=after.stock, delta=delta, reason="adjusted", order_id=None
                    )
                )
            await self._store.announce(*events)
            return after

        return await self._written(change)

    async def delete(self, product_id: str) -> None:
        # Soft delete: past orders still name the product, but it leaves the catalog.
        async def remove() -> ProductRecord:
            product = await self._store.update(product_id, ProductEdit(deleted_at=stored_now()))
            if product is None:
                raise _no_product(product_id)
            await self._store.announce(_changed(product))
            return product

        await self._written(remove)

    async def require_category(self, name: str) -> None:
        if not await self._store.category_exists(name):
            raise NotFound(f"No category named {name!r}.")

    async def seed_demo(self) -> int:
        """Fill an empty catalog with the demo products; a catalog in use is left alone."""
        if not await self._store.is_empty():
            return 0
        now = stored_now()
        products = [
            _new_product(
                sku=p.sku,
                name=p.name,
                category=p.category,
                price_paise=p.price_paise,
                unit=p.unit,
                stock=p.stock,
                description=p.description,
                at=now,
            )
            for p in demo_data.PRODUCTS
        ]

        async def add() -> list[ProductRecord]:
            added = await self._store.add_missing(products)
            await self._store.announce(*(_changed(product) for product in added))
            return added

        return len(await self._store.atomically(add))
