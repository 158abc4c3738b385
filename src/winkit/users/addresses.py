"""The address book: a signed-in user's saved delivery addresses, exactly one the default."""

from __future__ import annotations

from typing import Any

from bson import ObjectId

from winkit.core.auth import Principal
from winkit.core.database import Document, object_id, stored_now
from winkit.core.errors import Conflict, NotFound
from winkit.users.store import AddressLimitReached, UsersStore

MAX_ADDRESSES = 20

_FIELDS = ("name", "phone", "line1", "line2", "landmark", "city", "pincode", "is_default")


def public_address(address: Document) -> dict[str, Any]:
    return {
        "id": str(address["_id"]),
        **{field: address.get(field) for field in _FIELDS},
        "created_at": address["created_at"],
        "updated_at": address["updated_at"],
    }


def _address_id(address_id: str) -> ObjectId:
    oid = object_id(address_id)
    if oid is None:
        raise NotFound("No such address.")
    return oid


class AddressBook:
    def __init__(self, store: UsersStore, limit: int = MAX_ADDRESSES) -> None:
        self._store = store
        self._limit = limit

    async def addresses(self, caller: Principal) -> list[dict[str, Any]]:
        return [public_address(a) for a in await self._store.addresses_of(caller.user_id)]

    async def get(self, caller: Principal, address_id: str) -> dict[str, Any]:
        address = await self._store.address(caller.user_id, _address_id(address_id))
        if address is None:
            raise NotFound("No such address.")
        return public_address(address)

    async def add(self, caller: Principal, fields: dict[str, Any]) -> dict[str, Any]:
        make_default = bool(fields.pop("is_default", False))
        now = stored_now()
        address = {**fields, "user_id": caller.user_id, "created_at": now, "updated_at": now}
        try:
            saved = await self._store.insert_address(address, make_default=make_default, limit=self._limit)
        except AddressLimitReached as exc:
            raise Conflict(
                f"You can save at most {self._limit} addresses; delete one to add another.", limit=self._limit
            ) from exc
        return public_address(saved)

    async def update(self, caller: Principal, address_id: str, changes: dict[str, Any]) -> dict[str, Any]:
        oid = _address_id(address_id)
        is_default = changes.pop("is_default", None)
        if is_default is False:
            # Unsetting is only a no-op on an address that is not the default.
            current = await self._store.address(caller.user_id, oid)
            if current is None:
                raise NotFound("No such address.")
            if current["is_default"]:
                raise Conflict("This is your default address; make another address the default instead.")
        changes["updated_at"] = stored_now()
        updated = await self._store.update_address(caller.user_id, oid, changes, make_default=is_default is True)
        if updated is None:
            raise NotFound("No such address.")
        return public_address(updated)

    async def delete(self, caller: Principal, address_id: str) -> None:
        if not await self._store.delete_address(caller.user_id, _address_id(address_id)):
            raise NotFound("No such address.")
