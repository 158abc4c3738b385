"""The events services exchange over NATS: the envelope, the types and the version of each
(docs/events.md describes them). What goes on the wire is decided here and nowhere else."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, ValidationError

from winkit.core.address import ShippingAddress
from winkit.core.database import Document
from winkit.core.order_status import OrderStatus


class EventData(BaseModel):
    """The ``data`` of one event type at one version. Fields are in wire order: an event's
    bytes are its fields, in this order. Fields added later (which keep the version) are
    kept, not refused."""

    model_config = ConfigDict(frozen=True, extra="allow")
    TYPE: ClassVar[str]
    VERSION: ClassVar[int] = 1


class OrderedItem(BaseModel):
    """One line of an order as it was placed: the product, at its price then."""

    model_config = ConfigDict(frozen=True, extra="allow")
    product_id: str
    name: str
    price_paise: int
    quantity: int


class OrderCreated(EventData):
    TYPE = "order.created"
    order_id: str
    user_id: str
    items: list[OrderedItem]
    total_paise: int
    # Added within v1 (an addition keeps the version): events from before carry none.
    address: ShippingAddress | None = None
    created_at: str
    placed_at: str | None = None
    promised_at: str | None = None


class OrderCancelled(EventData):
    TYPE = "order.cancelled"
    order_id: str
    user_id: str
    by: str


class DeliveryOpened(EventData):
    TYPE = "delivery.opened"
    order_id: str
    user_id: str
    at: str


class DeliveryStatusChanged(EventData):
    TYPE = "delivery.status_changed"
    order_id: str
    user_id: str
    status: OrderStatus
    previous: OrderStatus
    version: int
    by: str
    at: str


class StockChanged(EventData):
    TYPE = "stock.changed"
    product_id: str
    stock: int
    delta: int
    reason: str
    order_id: str | None


class ProductChanged(EventData):
    TYPE = "product.changed"
    product_id: str
    version: int


# Every event type, by name (docs/events.md describes each).
EVENT_TYPES: dict[str, type[EventData]] = {
    model.TYPE: model
    for model in (OrderCreated, OrderCancelled, DeliveryOpened, DeliveryStatusChanged, StockChanged, ProductChanged)
}
EVENT_VERSIONS = {name: model.VERSION for name, model in EVENT_TYPES.items()}


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


class Unreadable(Exception):
    """An event this service cannot read: why (``reason``, one word; ``why``, in words,
    never the data's values), and the event if its envelope parsed."""

    def __init__(self, reason: str, why: str, event: Event | None = None) -> None:
        super().__init__(why)
        self.reason = reason
        self.why = why
        self.event = event


def read(raw: bytes) -> tuple[Event, EventData]:
    """An event as published, and its data as its type's model. Unreadable when it is
    ``malformed`` (no event at all), of a type this service does not know or a newer
    version than it reads (``unreadable_version``), or its data does not fit its model
    (``invalid_data``)."""
    try:
        event = Event.parse(raw)
    except (ValueError, KeyError, TypeError):
        raise Unreadable("malformed", "not an event this service can parse") from None
    known = EVENT_VERSIONS.get(event.type)
    if known is None:
        raise Unreadable("unreadable_version", f"{event.type} is not an event type this service knows", event)
    if event.version > known:
        why = f"{event.type} version {event.version} is newer than this service reads ({known})"
        raise Unreadable("unreadable_version", why, event)
    try:
        return event, EVENT_TYPES[event.type].model_validate(event.data)
    except ValidationError as exc:
        # Where and what, never the values: an address or a name may be among them.
        why = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise Unreadable("invalid_data", why, event) from None


def wire(doc: Document) -> bytes:
    """The envelope of an outbox document, as it is published: exactly these fields."""
    keys = ("type", "version", "source", "occurred_at", "data")
    return json.dumps({"id": doc["_id"], **{k: doc[k] for k in keys}}).encode()
