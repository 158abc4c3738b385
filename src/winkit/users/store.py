"""MongoDB access for the user service (database ``winkit_users``): documents in, models
out (winkit.users.models)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TypeVar

from bson import ObjectId
from pymongo import ASCENDING, DESCENDING, IndexModel, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError, PyMongoError

from winkit.core.database import Document, object_id
from winkit.core.store import Store
from winkit.users.models import (
    AddressChange,
    AddressEntry,
    MailboxMessage,
    MailNotSent,
    OneTimeCode,
    ProfileChange,
    SignInWindow,
    UserAccount,
)

# The default first, then oldest first (the id breaks ties within a millisecond).
_BOOK_ORDER = [("is_default", DESCENDING), ("created_at", ASCENDING), ("_id", ASCENDING)]
_OLDEST = [("created_at", ASCENDING), ("_id", ASCENDING)]

T = TypeVar("T")


class EmailTaken(Exception):
    pass


class UsersStore(Store):
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        super().__init__(db)
        self.users = db["users"]
        self.addresses = db["addresses"]
        self.address_books = db["address_books"]
        self.codes = db["otp_codes"]
        self.mail = db["dev_mail"]
        self.sign_in_windows = db["sign_in_windows"]

    async def ensure_indexes(self) -> None:
        # email_key is the address's identity (winkit.core.email.email_key): the unique
        # index makes each identity one account, without relying on collation support.
        # Keys stored before that rule were str.casefold(): the same for ASCII-only
        # addresses, but an account with a non-ASCII character in its address keeps a key
        # that the new rule never produces, and is not found until a one-off migration
        # recomputes email_key from email (no such migration exists yet).
        await self.users.create_indexes([IndexModel([("email_key", ASCENDING)], unique=True)])
        await self.addresses.create_indexes([IndexModel([("user_id", ASCENDING), ("created_at", ASCENDING)])])
        await self.codes.create_indexes([IndexModel([("expires_at", ASCENDING)], expireAfterSeconds=0)])
        await self.mail.create_indexes(
            [
                IndexModel([("to_key", ASCENDING), ("sent_at", DESCENDING)]),
                IndexModel([("sent_at", ASCENDING)], expireAfterSeconds=86_400),
            ]
        )
        await self.sign_in_windows.create_indexes([IndexModel([("expires_at", ASCENDING)], expireAfterSeconds=0)])

    # users
    async def insert_user(self, user: UserAccount) -> None:
        try:
            await self.users.insert_one(user.to_document(), session=self.session)
        except DuplicateKeyError as exc:
            raise EmailTaken(user.email) from exc

    async def user_by_email(self, email_key: str) -> UserAccount | None:
        return UserAccount.from_optional(await self.users.find_one({"email_key": email_key}, session=self.session))

    async def user_by_id(self, user_id: str) -> UserAccount | None:
        oid = object_id(user_id)
        if oid is None:
            return None
        return UserAccount.from_optional(await self.users.find_one({"_id": oid}, session=self.session))

    async def update_user(self, user_id: str, changes: ProfileChange, *, updated_at: datetime) -> UserAccount | None:
        oid = object_id(user_id)
        if oid is None:
            return None
        updated = await self.users.find_one_and_update(
            {"_id": oid},
            {"$set": {**changes.to_document(), "updated_at": updated_at}},
            return_document=ReturnDocument.AFTER,
            session=self.session,
        )
        return UserAccount.from_optional(updated)

    async def set_password_hash(self, user_id: ObjectId, password_hash: str) -> None:
        await self.users.update_one({"_id": user_id}, {"$set": {"password_hash": password_hash}}, session=self.session)

    # one-time codes, keyed by the address's identity
    async def start_code(self, code: OneTimeCode, cooldown_start: datetime) -> bool:
        """Store a new code unless one was sent after ``cooldown_start``; False if cooling down."""
        try:
            await self.codes.update_one(
                {"_id": code.email_key, "sent_at": {"$lte": cooldown_start}},
                {"$set": code.model_dump(by_alias=True, exclude={"email_key"})},
                upsert=True,
                session=self.session,
            )
        except DuplicateKeyError:
            # A code sent within the cooldown exists: the filter missed and the upsert collided.
            return False
        return True

    async def code(self, email_key: str) -> OneTimeCode | None:
        return OneTimeCode.from_optional(await self.codes.find_one({"_id": email_key}, session=self.session))

    async def count_attempt(self, email_key: str, max_attempts: int) -> bool:
        """Spend one try; False when the code has none left (or is gone)."""
        result = await self.codes.update_one(
            {"_id": email_key, "attempts": {"$lt": max_attempts}}, {"$inc": {"attempts": 1}}, session=self.session
        )
        return result.modified_count == 1

    async def consume_code(self, email_key: str, code_hash: str) -> bool:
        result = await self.codes.delete_one({"_id": email_key, "code_hash": code_hash}, session=self.session)
        return result.deleted_count == 1

    async def drop_code(self, email_key: str) -> None:
        await self.codes.delete_one({"_id": email_key}, session=self.session)

    # sign-in attempts: one document per email identity and window, found by its _id
    async def sign_in_attempts(self, window_id: str) -> int:
        doc = await self.sign_in_windows.find_one({"_id": window_id}, session=self.session)
        window = SignInWindow.from_optional(doc)
        return 0 if window is None else window.attempts

    async def add_sign_in_attempt(self, window_id: str, limit: int, expires_at: datetime) -> bool:
        """Count one attempt in the window unless it holds ``limit`` already; False if it
        does. One conditional increment: concurrent attempts, from any replica, never
        take it past ``limit``."""
        below_limit = {"_id": window_id, "attempts": {"$lt": limit}}
        increment = {"$inc": {"attempts": 1}}
        try:
            await self.sign_in_windows.update_one(
                below_limit,
                {**increment, "$setOnInsert": {"expires_at": expires_at}},
                upsert=True,
                session=self.session,
            )
        except DuplicateKeyError:
            # The filter missed a window that exists: it is full, or a concurrent attempt
            # opened it between the filter and the insert. Only the second kind fits now.
            result = await self.sign_in_windows.update_one(below_limit, increment, session=self.session)
            return result.modified_count == 1
        return True

    # the dev mailbox
    async def add_mail(self, message: MailboxMessage) -> None:
        """Raises MailNotSent when the database does not take the message."""
        try:
            await self.mail.insert_one(message.to_document(), session=self.session)
        except PyMongoError as exc:
            raise MailNotSent(message.to) from exc

    async def mail_to(self, to_key: str, limit: int = 50) -> list[MailboxMessage]:
        cursor = self.mail.find({"to_key": to_key}, session=self.session).sort("sent_at", DESCENDING).limit(limit)
        return [MailboxMessage.from_document(doc) async for doc in cursor]

    # addresses: a change that can move the default runs in ``in_address_book``, a unit of
    # work that first writes the user's address_books document. Two such changes for one
    # user therefore conflict, and the unit of work runs the loser again on a fresh
    # snapshot: they run as if one after the other, so the book's rules (one default, a
    # limit) hold under concurrency.
    async def in_address_book(self, user_id: str, change: Callable[[], Awaitable[T]]) -> T:
        async def locked() -> T:
            await self.address_books.update_one(
                {"_id": user_id}, {"$inc": {"changes": 1}}, upsert=True, session=self.session
            )
            return await change()

        return await self.atomically(locked)

    async def addresses_of(self, user_id: str) -> list[AddressEntry]:
        cursor = self.addresses.find({"user_id": user_id}, session=self.session).sort(_BOOK_ORDER)
        return [AddressEntry.from_document(doc) async for doc in cursor]

    async def address(self, user_id: str, address_id: str) -> AddressEntry | None:
        """None when ``address_id`` is no address of the user's, or not an id at all."""
        oid = object_id(address_id)
        if oid is None:
            return None
        return AddressEntry.from_optional(
            await self.addresses.find_one({"_id": oid, "user_id": user_id}, session=self.session)
        )

    async def oldest_address(self, user_id: str) -> AddressEntry | None:
        return AddressEntry.from_optional(
            await self.addresses.find_one({"user_id": user_id}, sort=_OLDEST, session=self.session)
        )

    async def count_addresses(self, user_id: str) -> int:
        return await self.addresses.count_documents({"user_id": user_id}, session=self.session)

    async def insert_address(self, address: AddressEntry) -> None:
        await self.addresses.insert_one(address.to_document(), session=self.session)

    async def update_address(
        self, user_id: str, address_id: str, changes: AddressChange, *, updated_at: datetime, make_default: bool
    ) -> AddressEntry | None:
        """Set ``changes`` (and ``is_default``, if ``make_default``); the address after.
        None when ``address_id`` is no address of the user's, or not an id at all."""
        oid = object_id(address_id)
        if oid is None:
            return None
        change = {**changes.to_document(), "updated_at": updated_at}
        if make_default:
            change["is_default"] = True
        updated = await self.addresses.find_one_and_update(
            {"_id": oid, "user_id": user_id},
            {"$set": change},
            return_document=ReturnDocument.AFTER,
            session=self.session,
        )
        return AddressEntry.from_optional(updated)

    async def delete_address(self, user_id: str, address_id: str) -> AddressEntry | None:
        """The address deleted; None when ``address_id`` is no address of the user's, or not
        an id at all."""
        oid = object_id(address_id)
        if oid is None:
            return None
        deleted = await self.addresses.find_one_and_delete({"_id": oid, "user_id": user_id}, session=self.session)
        return AddressEntry.from_optional(deleted)

    async def make_default(self, address: AddressEntry) -> None:
        """Only marks it: the caller sees to it that no other address of the user's is the default."""
        await self.addresses.update_one({"_id": address.id}, {"$set": {"is_default": True}}, session=self.session)

    async def unset_default(self, user_id: str) -> None:
        await self.addresses.update_many(
            {"user_id": user_id, "is_default": True}, {"$set": {"is_default": False}}, session=self.session
        )
