"""MongoDB through pymongo's async API: one client and one database per service."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime
from typing import Any

from bson import ObjectId
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import PyMongoError

from winkit.core.ids import is_canonical
from winkit.core.settings import ServiceName, Settings

Document = dict[str, Any]


# Pooled connections idle this long are closed by the driver before their next use.
# SecantusDB closes a connection idle for 300 s (a load balancer or firewall in front of
# MongoDB does the same), and pymongo's async pool cannot see that: it stops reading a
# socket once it is back in the pool, so the next command is sent into the dead socket and
# fails. Reads are retried on a new connection but writes are not (retryWrites=false), so
# the first write after an idle spell would fail. Keep this well below the server's limit.
MAX_IDLE_TIME_MS = 60_000
# No database operation (a transaction with its retries counts as one) may take longer:
# past this the request answers 503 instead of hanging, e.g. on a document that a crashed
# process left locked inside a transaction the server has not reaped yet.
OPERATION_TIMEOUT_MS = 10_000


def connect(settings: Settings, service: ServiceName) -> AsyncMongoClient[Document]:
    # Credentials beside the URI win over any inside it; none given, the URI's stay.
    credentials: dict[str, Any] = {}
    if settings.mongodb_username is not None:
        credentials = {"username": settings.mongodb_username, "password": settings.effective_mongodb_password()}
    return AsyncMongoClient(
        settings.mongodb_uri_for(service),
        tz_aware=True,
        appname=f"winkit-{service}",
        serverSelectionTimeoutMS=5_000,
        maxIdleTimeMS=MAX_IDLE_TIME_MS,
        timeoutMS=OPERATION_TIMEOUT_MS,
        **credentials,
    )


def service_database(client: AsyncMongoClient[Document], service: ServiceName) -> AsyncDatabase[Document]:
    return client[Settings.database_name(service)]


# Seconds to wait on a database that may be gone: closing at shutdown, pinging for /health.
CLOSE_TIMEOUT = 3.0
PING_TIMEOUT = 2.0


async def close(client: AsyncMongoClient[Document]) -> None:
    """Close, without waiting long on a database that is already gone."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(client.close(), CLOSE_TIMEOUT)


async def is_reachable(db: AsyncDatabase[Document]) -> bool:
    try:
        await asyncio.wait_for(db.command("ping"), PING_TIMEOUT)
    except (PyMongoError, TimeoutError):
        return False
    return True


def stored_now() -> datetime:
    """Now, in UTC and whole milliseconds as MongoDB stores dates, so what a write
    answers equals what later reads return."""
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def object_id(value: str) -> ObjectId | None:
    """A client-supplied id as an ObjectId, or None when it is not one in its one spelling."""
    return ObjectId(value) if is_canonical(value) else None
