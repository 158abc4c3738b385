"""MongoDB through pymongo's async API: one client and one database per service."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime
from typing import Any

from bson import ObjectId
from bson.errors import InvalidId
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import PyMongoError

from winkit.platform.settings import ServiceName, Settings

Document = dict[str, Any]


def connect(settings: Settings, service: ServiceName) -> AsyncMongoClient[Document]:
    return AsyncMongoClient(
        settings.mongodb_uri_for(service),
        tz_aware=True,
        appname=f"winkit-{service}",
        serverSelectionTimeoutMS=5_000,
    )


def service_database(client: AsyncMongoClient[Document], service: ServiceName) -> AsyncDatabase[Document]:
    return client[Settings.database_name(service)]


async def close(client: AsyncMongoClient[Document], timeout: float = 3.0) -> None:
    """Close, without waiting long on a database that is already gone."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(client.close(), timeout)


async def is_reachable(db: AsyncDatabase[Document], timeout: float = 2.0) -> bool:
    try:
        await asyncio.wait_for(db.command("ping"), timeout)
    except (PyMongoError, TimeoutError):
        return False
    return True


def stored_now() -> datetime:
    """Now, in UTC and whole milliseconds as MongoDB stores dates, so what a write
    answers equals what later reads return."""
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def object_id(value: str) -> ObjectId | None:
    """A client-supplied id as an ObjectId, or None when it cannot be one."""
    try:
        return ObjectId(value)
    except (InvalidId, TypeError):
        return None
