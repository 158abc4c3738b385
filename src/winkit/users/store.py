"""MongoDB access for the user service (database ``winkit_users``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pymongo import ASCENDING, DESCENDING, IndexModel, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from winkit.platform.database import Document, object_id


class EmailTaken(Exception):
    pass


class UsersStore:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.users = db["users"]
        self.codes = db["otp_codes"]
        self.mail = db["dev_mail"]

    async def ensure_indexes(self) -> None:
        # email_key is the case-folded address: the unique index makes the email
        # case-insensitively unique without relying on collation support.
        await self.users.create_indexes([IndexModel([("email_key", ASCENDING)], unique=True)])
        await self.codes.create_indexes([IndexModel([("expires_at", ASCENDING)], expireAfterSeconds=0)])
        await self.mail.create_indexes(
            [
                IndexModel([("to_key", ASCENDING), ("sent_at", DESCENDING)]),
                IndexModel([("sent_at", ASCENDING)], expireAfterSeconds=86_400),
            ]
        )

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

    # one-time codes, keyed by the case-folded email
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

    # the dev mail outbox
    async def add_mail(self, message: Document) -> None:
        await self.mail.insert_one(message)

    async def mail_to(self, to_key: str, limit: int = 50) -> list[Document]:
        cursor = self.mail.find({"to_key": to_key}).sort("sent_at", DESCENDING).limit(limit)
        return await cursor.to_list()
