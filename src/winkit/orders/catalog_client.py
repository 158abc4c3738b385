"""What the cart & order service asks of the catalog, over HTTP with a service token."""

from __future__ import annotations

from urllib.parse import quote

from pydantic import BaseModel, TypeAdapter

from winkit.core.errors import Conflict, NotFound, OutOfStock, PricesChanged, ServiceUnavailable
from winkit.core.event_contracts import OrderedItem
from winkit.core.http import ServiceClient


class CatalogProduct(BaseModel):
    """A product as the catalog sells it now: what a cart needs of it."""

    id: str
    name: str
    price_paise: int
    stock: int


_PRODUCTS = TypeAdapter(list[CatalogProduct])


class CatalogClient:
    def __init__(self, client: ServiceClient) -> None:
        self._client = client

    async def product(self, product_id: str) -> CatalogProduct:
        # Ids come from clients: encoded, so no text can change the path or break the URL.
        response = await self._client.request("GET", f"/products/{quote(product_id, safe='')}")
        if response.status_code == 404:
            raise NotFound(f"No product with id {product_id!r}.")
        if response.status_code != 200:
            raise ServiceUnavailable("The catalog could not answer; try again shortly.")
        return CatalogProduct.model_validate_json(response.content)

    async def products(self, product_ids: list[str]) -> dict[str, CatalogProduct]:
        """The products still sold among ``product_ids``, by id, as the catalog has them now."""
        response = await self._client.request("GET", "/products", params={"ids": ",".join(product_ids)})
        if response.status_code != 200:
            raise ServiceUnavailable("The catalog could not answer; try again shortly.")
        return {product.id: product for product in _PRODUCTS.validate_json(response.content)}

    async def reserve(self, order_id: str, items: list[OrderedItem]) -> None:
        """Take stock for every line or none, each at the price the shopper saw; OutOfStock
        names the short lines, PricesChanged the repriced ones."""
        lines = [{"product_id": i.product_id, "quantity": i.quantity, "price_paise": i.price_paise} for i in items]
        body = {"order_id": order_id, "items": lines}
        response = await self._client.request("POST", "/internal/reservations", json=body)
        if response.status_code == 409:
            problem = response.json()
            detail = problem.get("detail", "Not enough stock.")
            if problem.get("type", "").endswith("/prices-changed"):
                raise PricesChanged(detail, changed_items=problem.get("changed_items", []))
            if problem.get("type", "").endswith("/out-of-stock"):
                raise OutOfStock(detail, short_items=problem.get("short_items", []))
            raise Conflict(detail)
        if response.status_code != 201:
            raise ServiceUnavailable("The catalog could not reserve stock; try again shortly.")

    async def release(self, order_id: str) -> None:
        response = await self._client.request("POST", f"/internal/reservations/{quote(order_id, safe='')}/release")
        if response.status_code != 200:
            raise ServiceUnavailable("The catalog could not release stock.")
