"""What the cart & order service asks of the user service: a shopper's saved address,
read with the shopper's own token, so the user service decides what is theirs."""

from __future__ import annotations

from urllib.parse import quote

from winkit.core.address import ShippingAddress
from winkit.core.auth import Principal
from winkit.core.errors import ServiceUnavailable, Unauthorized, Unprocessable
from winkit.core.http import ServiceClient


class UsersClient:
    def __init__(self, client: ServiceClient) -> None:
        self._client = client

    async def saved_address(self, principal: Principal, address_id: str) -> ShippingAddress:
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
        # The address alone: its id, whether it is the default and when it was saved are not the order's.
        return ShippingAddress.model_validate_json(response.content)
