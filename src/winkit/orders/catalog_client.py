"""What the cart & order service asks of the catalog, over HTTP with a service token."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from winkit.core.errors import Conflict, NotFound, OutOfStock, PricesChanged, ServiceUnavailable
from winkit.core.http import ServiceClient


class CatalogClient:
    def __init__(self, client: ServiceClient) -> None:
        self._client = client

    async def product(self, product_id: str) -> dict[str, Any]:
        # Ids come from clients: encoded, so no text can change the path or break the URL.
        response = await self._client.request("GET", f"/products/{quote(product_id, safe='')}")
        if response.status_code == 404:
            raise NotFound(f"No product with id {product_id!r}.")
        if response.status_code != 200:
            raise ServiceUnavailable("The catalog could not answer; try again shortly.")
        product: dict[str, Any] = response.json()
        return product

    async def products(self, product_ids: list[str]) -> dict[str, dict[str, Any]]:
        """The products still sold among ``product_ids``, by id, as the catalog has them now."""
        response = await self._client.request("GET", "/products", params={"ids": ",".join(product_ids)})
        if response.status_code != 200:
            raise ServiceUnavailable("The catalog could not answer; try again shortly.")
        return {product["id"]: product for product in response.json()}

    async def reserve(self, order_id: str, items: list[dict[str, Any]]) -> None:
        """Take stock for every line or none, each at the price the shopper saw (when the line
        has one); OutOfStock names the short lines, PricesChanged the repriced ones."""
        body = {"order_id": order_id, "items": items}
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
