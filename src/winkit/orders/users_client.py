"""What the cart & order service asks of the user service: a shopper's saved address,
read with the shopper's own token, so the user service decides what is theirs."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from winkit.core.auth import Principal
from winkit.core.errors import ServiceUnavailable, Unauthorized, Unprocessable
from winkit.core.http import ServiceClient

ADDRESS_FIELDS = ("name", "phone", "line1", "line2", "landmark", "city", "pincode")


class UsersClient:
    def __init__(self, client: ServiceClient) -> None:
        self._client = client

    async def saved_address(self, principal: Principal, address_id: str) -> dict[str, Any]:
        response = await self._client.request("GET", f"/addresses/{quote(address_id, safe='')}", bearer=principal.token)
        if response.status_code == 404:
            raise Unprocessable(
                f"You have no saved address with id {address_id!r}.",
                errors=[{"loc": ["body", "address_id"], "msg": "Not one of your saved addresses.", "type": "unknown"}],
            )
        if response.status_code == 401:
            raise Unauthorized("Your session has expired; sign in again.")
        if response.status_code != 200:
            raise ServiceUnavailable("Your saved addresses could not be read; try again shortly.")
        saved = response.json()
        return {field: saved.get(field) for field in ADDRESS_FIELDS}
