"""The events services exchange over NATS: the envelope, the types and the version of each
(docs/events.md describes them). What goes on the wire is decided here and nowhere else."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from winkit.core.database import Document

# Event types and their current schema version (docs/events.md describes each).
EVENT_VERSIONS = {
    "order.created": 1,
    "order.cancelled": 1,
    "delivery.opened": 1,
    "delivery.status_changed": 1,
    "stock.changed": 1,
    "product.changed": 1,
}


@dataclass(frozen=True, slots=True)
class Event:
    id: str
    type: str
    version: int
    source: str
    occurred_at: str
    data: dict[str, Any]

    @classmethod
    def parse(cls, raw: bytes) -> Event:
        body = json.loads(raw)
        return cls(
            id=str(body["id"]),
            type=str(body["type"]),
            version=int(body["version"]),
            source=str(body["source"]),
            occurred_at=str(body["occurred_at"]),
            data=dict(body["data"]),
        )

    def unreadable(self) -> str | None:
        """Why this service cannot read the event (a type it does not know, or a newer
        version of one than it was written for); None if it can."""
        known = EVENT_VERSIONS.get(self.type)
        if known is None:
            return f"{self.type} is not an event type this service knows"
        if self.version > known:
            return f"{self.type} version {self.version} is newer than this service reads ({known})"
        return None


def wire(doc: Document) -> bytes:
    """The envelope of an outbox document, as it is published: exactly these fields."""
    keys = ("type", "version", "source", "occurred_at", "data")
    return json.dumps({"id": doc["_id"], **{k: doc[k] for k in keys}}).encode()
