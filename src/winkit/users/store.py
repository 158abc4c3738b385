"""MongoDB access for the user service (database ``winkit_users``)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, TypeVar

from bson import ObjectId
from pymongo import ASCENDING, DESCENDING, IndexModel, ReturnDocument
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from winkit.core.database import Document, object_id

# The default first, then oldest first (the id breaks ties within a millisecond).
_BOOK_ORDER = [("is_default", DESCENDING), ("created_at", ASCENDING), ("_id", ASCENDING)]
_OLDEST = [("created_at", ASCENDING), ("_id", ASCENDING)]

T = TypeVar("T")


class EmailTaken(Exception):
    pass


class AddressLimitReached(Exception):
    pass


class UsersStore:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self._client = db.client
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
    async def insert_user(self, user: Document) -> Document:
        try:
            result = await self.users.insert_one(user)
        except DuplicateKeyError as exc:
            raise EmailTaken(user["email"]) from exc
        return {**user, "_id": result.inserted_id}

    async def user_by_email(self, email_key: str) -> Document | None:
        return await self.users.find_one({"email_key": email_key})

    async def user_by_id(self, user_id: str) -> Document | None:
        oid = object_id(user_id)
        return None if oid is None else await self.users.find_one({"_id": oid})

    async def update_user(self, user_id: str, changes: dict[str, Any]) -> Document | None:
        oid = object_id(user_id)
        if oid is None:
            return None
        return await self.users.find_one_and_update(
            {"_id": oid}, {"$set": changes}, return_document=ReturnDocument.AFTER
        )

    async def set_password_hash(self, user_id: Any, password_hash: str) -> None:
        await self.users.update_one({"_id": user_id}, {"$set": {"password_hash": password_hash}})

    # one-time codes, keyed by the address's identity
    async def start_code(self, email_key: str, code: Document, cooldown_start: datetime) -> bool:
        """Store a new code unless one was sent after ``cooldown_start``; False if cooling down."""
        try:
            await self.codes.update_one(
                {"_id": email_key, "sent_at": {"$lte": cooldown_start}}, {"$set": code}, upsert=True
            )
        except DuplicateKeyError:
            # A code sent within the cooldown exists: the filter missed and the upsert collided.
            return False
        return True

    async def code(self, email_key: str) -> Document | None:
        return await self.codes.find_one({"_id": email_key})

    async def count_attempt(self, email_key: str, max_attempts: int) -> bool:
        """Spend one try; False when the code has none left (or is gone)."""
        result = await self.codes.update_one(
            {"_id": email_key, "attempts": {"$lt": max_attempts}}, {"$inc": {"attempts": 1}}
        )
        return result.modified_count == 1

    async def consume_code(self, email_key: str, code_hash: str) -> bool:
        result = await self.codes.delete_one({"_id": email_key, "code_hash": code_hash})
        return result.deleted_count == 1

    async def drop_code(self, email_key: str) -> None:
        await self.codes.delete_one({"_id": email_key})

    # sign-in attempts: one document per email identity and window, found by its _id
    async def sign_in_attempts(self, window_id: str) -> int:
        window = await self.sign_in_windows.find_one({"_id": window_id})
        return 0 if window is None else window["attempts"]

    async def add_sign_in_attempt(self, window_id: str, limit: int, expires_at: datetime) -> bool:
        """Count one attempt in the window unless it holds ``limit`` already; False if it
        does. One conditional increment: concurrent attempts, from any replica, never
        take it past ``limit``."""
        below_limit = {"_id": window_id, "attempts": {"$lt": limit}}
        increment = {"$inc": {"attempts": 1}}
        try:
            await self.sign_in_windows.update_one(
                below_limit, {**increment, "$setOnInsert": {"expires_at": expires_at}}, upsert=True
            )
        except DuplicateKeyError:
            # The filter missed a window that exists: it is full, or a concurrent attempt
            # opened it between the filter and the insert. Only the second kind fits now.
            result = await self.sign_in_windows.update_one(below_limit, increment)
            return result.modified_count == 1
        return True

    # the dev mailbox
    async def add_mail(self, message: Document) -> None:
        await self.mail.insert_one(message)

    async def mail_to(self, to_key: str, limit: int = 50) -> list[Document]:
        cursor = self.mail.find({"to_key": to_key}).sort("sent_at", DESCENDING).limit(limit)
        return await cursor.to_list()

    # addresses: every change that can move the default runs in a transaction that first
    # writes the user's address_books document. Two such changes for one user therefore
    # conflict, and with_transaction retries the loser on a fresh snapshot: they run as if
    # one after the other, so "exactly one default" and the limit hold under concurrency.
    async def _in_book(self, user_id: str, change: Callable[[AsyncClientSession], Awaitable[T]]) -> T:
        async def locked(session: AsyncClientSession) -> T:
            await self.address_books.update_one(
                {"_id": user_id}, {"$inc": {"changes": 1}}, upsert=True, session=session
            )
            return await change(session)

        async with self._client.start_session() as session:
            return await session.with_transaction(locked)

    async def addresses_of(self, user_id: str) -> list[Document]:
        return await self.addresses.find({"user_id": user_id}).sort(_BOOK_ORDER).to_list()

    async def address(self, user_id: str, address_id: ObjectId) -> Document | None:
        return await self.addresses.find_one({"_id": address_id, "user_id": user_id})

    async def insert_address(self, address: Document, *, make_default: bool, limit: int) -> Document:
        """Insert ``address`` (it carries ``user_id``); a user's first address is the default."""
        user_id = address["user_id"]

        async def insert(session: AsyncClientSession) -> Document:
            count = await self.addresses.count_documents({"user_id": user_id}, session=session)
            if count >= limit:
                raise AddressLimitReached(limit)
            is_default = make_default or count == 0
            if is_default:
                await self._unset_default(user_id, session)
            doc = {**address, "is_default": is_default}
            result = await self.addresses.insert_one(doc, session=session)
            return {**doc, "_id": result.inserted_id}

        return await self._in_book(user_id, insert)

    async def update_address(
        self, user_id: str, address_id: ObjectId, changes: Document, *, make_default: bool
    ) -> Document | None:
        where = {"_id": address_id, "user_id": user_id}
        if not make_default:
            # Leaves is_default alone, so one document and no transaction.
            return await self.addresses.find_one_and_update(
                where, {"$set": changes}, return_document=ReturnDocument.AFTER
            )

        async def update(session: AsyncClientSession) -> Document | None:
            if await self.addresses.find_one(where, {"_id": 1}, session=session) is None:
                return None
            await self._unset_default(user_id, session)
            return await self.addresses.find_one_and_update(
                where,
                {"$set": {**changes, "is_default": True}},
                return_document=ReturnDocument.AFTER,
                session=session,
            )

        return await self._in_book(user_id, update)

    async def delete_address(self, user_id: str, address_id: ObjectId) -> bool:
        """Delete; if it was the default, the oldest remaining address becomes the default."""

        async def delete(session: AsyncClientSession) -> bool:
            deleted = await self.addresses.find_one_and_delete({"_id": address_id, "user_id": user_id}, session=session)
            if deleted is None:
                return False
            if deleted["is_default"]:
                oldest = await self.addresses.find_one({"user_id": user_id}, {"_id": 1}, sort=_OLDEST, session=session)
                if oldest is not None:
                    await self.addresses.update_one(
                        {"_id": oldest["_id"]}, {"$set": {"is_default": True}}, session=session
                    )
            return True

        return await self._in_book(user_id, delete)

    async def _unset_default(self, user_id: str, session: AsyncClientSession) -> None:
        await self.addresses.update_many(
            {"user_id": user_id, "is_default": True}, {"$set": {"is_default": False}}, session=session
        )
