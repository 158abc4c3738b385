"""The address book: a signed-in user's saved delivery addresses, exactly one the default."""

from __future__ import annotations

from winkit.core.address import DeliveryAddress
from winkit.core.auth import Principal
from winkit.core.database import stored_now
from winkit.core.errors import Conflict, NotFound
from winkit.users.models import AddressChange, AddressEntry
from winkit.users.store import AddressLimitReached, UsersStore

MAX_ADDRESSES = 20


class AddressBook:
    def __init__(self, store: UsersStore, limit: int = MAX_ADDRESSES) -> None:
        self._store = store
        self._limit = limit

    async def addresses(self, caller: Principal) -> list[AddressEntry]:
        return await self._store.addresses_of(caller.user_id)

    async def get(self, caller: Principal, address_id: str) -> AddressEntry:
        address = await self._store.address(caller.user_id, address_id)
        if address is None:
            raise NotFound("No such address.")
        return address

    async def add(self, caller: Principal, address: DeliveryAddress, *, make_default: bool) -> AddressEntry:
        now = stored_now()
        # Only the address's own fields: the request's subclass of it carries ``is_default`` too.
        fields = address.model_dump(include=set(DeliveryAddress.model_fields))
        entry = AddressEntry(**fields, user_id=caller.user_id, created_at=now, updated_at=now, is_default=make_default)
        try:
            return await self._store.insert_address(entry, limit=self._limit)
        except AddressLimitReached as exc:
            raise Conflict(
                f"You can save at most {self._limit} addresses; delete one to add another.", limit=self._limit
            ) from exc

    async def update(
        self, caller: Principal, address_id: str, changes: AddressChange, *, is_default: bool | None
    ) -> AddressEntry:
        """Change the fields in ``changes``; ``is_default`` True makes this the default,
        None leaves it alone."""
        if is_default is False:
            # Unsetting is only a no-op on an address that is not the default.
            current = await self.get(caller, address_id)
            if current.is_default:
                raise Conflict("This is your default address; make another address the default instead.")
        updated = await self._store.update_address(
            caller.user_id, address_id, changes, updated_at=stored_now(), make_default=is_default is True
        )
        if updated is None:
            raise NotFound("No such address.")
        return updated

    async def delete(self, caller: Principal, address_id: str) -> None:
        if not await self._store.delete_address(caller.user_id, address_id):
            raise NotFound("No such address.")
