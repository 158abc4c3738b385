"""The address book: a signed-in user's saved delivery addresses, exactly one the default
(the first saved, until another is made the default), at most ``MAX_ADDRESSES``. Changes
that can move the default run in the store's ``in_address_book``, one at a time per user."""

from __future__ import annotations

from winkit.core.address import DeliveryAddress
from winkit.core.auth import Principal
from winkit.core.database import stored_now
from winkit.core.errors import Conflict, NotFound
from winkit.users.models import AddressChange, AddressEntry
from winkit.users.store import UsersStore

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
        """Save ``address``; it becomes the default if asked to or if it is the first."""
        user_id, now = caller.user_id, stored_now()
        # Only the address's own fields: the request's subclass of it carries ``is_default`` too.
        fields = address.model_dump(include=set(DeliveryAddress.model_fields))

        async def add_to_book() -> AddressEntry:
            count = await self._store.count_addresses(user_id)
            if count >= self._limit:
                raise Conflict(
                    f"You can save at most {self._limit} addresses; delete one to add another.", limit=self._limit
                )
            entry = AddressEntry(
                **fields, user_id=user_id, created_at=now, updated_at=now, is_default=make_default or count == 0
            )
            if entry.is_default:
                await self._store.unset_default(user_id)
            await self._store.insert_address(entry)
            return entry

        return await self._store.in_address_book(user_id, add_to_book)

    async def update(
        self, caller: Principal, address_id: str, changes: AddressChange, *, is_default: bool | None
    ) -> AddressEntry:
        """Change the fields in ``changes``; ``is_default`` True makes this the default,
        None leaves it alone."""
        user_id, now = caller.user_id, stored_now()
        if is_default is True:

            async def make_default() -> AddressEntry | None:
                if await self._store.address(user_id, address_id) is None:
                    return None
                await self._store.unset_default(user_id)
                return await self._store.update_address(user_id, address_id, changes, updated_at=now, make_default=True)

            updated = await self._store.in_address_book(user_id, make_default)
        else:
            if is_default is False:
                # Unsetting is only a no-op on an address that is not the default.
                current = await self.get(caller, address_id)
                if current.is_default:
                    raise Conflict("This is your default address; make another address the default instead.")
            # Leaves the default alone: one document, so no unit of work.
            updated = await self._store.update_address(user_id, address_id, changes, updated_at=now, make_default=False)
        if updated is None:
            raise NotFound("No such address.")
        return updated

    async def delete(self, caller: Principal, address_id: str) -> None:
        """Delete; if it was the default, the oldest remaining address becomes the default."""
        user_id = caller.user_id

        async def delete_from_book() -> bool:
            deleted = await self._store.delete_address(user_id, address_id)
            if deleted is None:
                return False
            if deleted.is_default and (oldest := await self._store.oldest_address(user_id)) is not None:
                await self._store.make_default(oldest)
            return True

        if not await self._store.in_address_book(user_id, delete_from_book):
            raise NotFound("No such address.")
