"""The catalog as shoppers read it, held in memory by each replica: every product and
category already serialised as the API shows it, searched and paged without the database.

The database stays the truth. Every stored product carries a ``version`` that each write
raises by one; the model takes a stored product only if it is newer than what it holds,
so products may arrive late, twice or out of order (events, re-reads, resyncs) and the
model never goes back. Deleted products keep their version here, so an old copy cannot
bring them back. ``read_model_sync`` decides when products arrive.
"""

from __future__ import annotations

import hashlib
from bisect import bisect_left, insort
from collections import Counter
from dataclasses import dataclass
from itertools import islice
from operator import attrgetter

from pydantic import TypeAdapter

from winkit.catalog.models import ProductRecord
from winkit.catalog.schemas import Category, Product
from winkit.core.urls import segment

_PRODUCT = TypeAdapter(Product)
_CATEGORIES = TypeAdapter(list[Category])


def name_key(name: str) -> str:
    """A name as search compares it: case-folded."""
    return name.casefold()


@dataclass(frozen=True, slots=True)
class Representation:
    """An answer's JSON bytes and their strong entity tag (RFC 9110), the same on every
    replica that shows the same data."""

    body: bytes
    etag: str

    @classmethod
    def of(cls, body: bytes) -> Representation:
        return cls(body, f'"{hashlib.blake2b(body, digest_size=16).hexdigest()}"')


@dataclass(frozen=True, slots=True)
class _Shelved:
    """One product for sale: where it sorts (category, name, id, as the database sorts)
    and how it is shown."""

    key: tuple[str, str, str]
    category: str
    name_key: str
    representation: Representation


_BY_KEY = attrgetter("key")


class CatalogReadModel:
    def __init__(self, public_api_url: str) -> None:
        # Links come from the configured public URL, never from a request (see core/urls.py).
        self._links = f"{public_api_url}/catalog"
        self._versions: dict[str, int] = {}  # every product ever seen, deleted ones too
        self._shelved: dict[str, _Shelved] = {}  # products for sale, by id
        self._order: list[_Shelved] = []  # the same, sorted by key
        self._counts: Counter[str] = Counter()
        # Raised by every change: answers built before it are stale.
        self.generation = 0

    def __len__(self) -> int:
        return len(self._shelved)

    def view(self, product: ProductRecord) -> Product:
        """A stored product as every catalog answer shows it."""
        return Product.of(product, f"{self._links}/products/{segment(str(product.id))}/image.svg")

    def holds(self, product_id: str, version: int) -> bool:
        """Whether this product is shown at ``version`` or later already."""
        return self._versions.get(product_id, -1) >= version

    def apply(self, product: ProductRecord) -> bool:
        """Show a stored product if it is newer than what is shown; whether it was."""
        product_id = str(product.id)
        if self.holds(product_id, product.version):
            return False
        self._versions[product_id] = product.version
        if (old := self._shelved.pop(product_id, None)) is not None:
            del self._order[bisect_left(self._order, old.key, key=_BY_KEY)]
            self._counts[old.category] -= 1
            if not self._counts[old.category]:
                del self._counts[old.category]
        if product.deleted_at is None:
            category, key = product.category, product.name_key
            body = _PRODUCT.dump_json(self.view(product))
            new = _Shelved((category, key, product_id), category, key, Representation.of(body))
            self._shelved[product_id] = new
            insort(self._order, new, key=_BY_KEY)
            self._counts[new.category] += 1
        self.generation += 1
        return True

    def product(self, product_id: str) -> Representation | None:
        shelved = self._shelved.get(product_id)
        return None if shelved is None else shelved.representation

    def products(
        self, *, category: str | None, q: str | None, limit: int | None, offset: int, ids: list[str] | None = None
    ) -> Representation:
        """Products matching every filter given, by category then name: ``q`` is found
        literally in the name, whatever the case."""
        if ids is not None:
            found = (self._shelved.get(i) for i in set(ids))
            candidates = sorted((s for s in found if s is not None), key=_BY_KEY)
        elif category is not None:
            # The order is by category first: one category's products sit side by side.
            # category + "\0" is the smallest text after category.
            start = bisect_left(self._order, (category,), key=_BY_KEY)
            end = bisect_left(self._order, (category + "\0",), key=_BY_KEY)
            candidates = self._order[start:end]
        else:
            candidates = self._order
        needle = name_key(q.strip()) if q else ""
        matching = (
            s
            for s in candidates
            if (category is None or s.category == category) and (not needle or needle in s.name_key)
        )
        page = islice(matching, offset, None if limit is None else offset + limit)
        return Representation.of(b"[" + b",".join(s.representation.body for s in page) + b"]")

    def categories(self) -> Representation:
        """Every category with products for sale, with their number, by name."""
        shown = [
            Category(name=name, count=count, image_url=f"{self._links}/categories/{segment(name)}/image.svg")
            for name, count in sorted(self._counts.items())
        ]
        return Representation.of(_CATEGORIES.dump_json(shown))
