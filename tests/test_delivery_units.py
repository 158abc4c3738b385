"""The delivery service without servers: its records as stored, the answers and stream
events built from them (their exact bytes), and a record opened from order.created."""

from __future__ import annotations

from datetime import datetime

import bson
from bson.tz_util import utc

from winkit.core.address import ShippingAddress
from winkit.core.event_contracts import OrderCreated
from winkit.core.order_status import OrderStatus
from winkit.core.sse import encode
from winkit.delivery.models import DeliveryRecord, StatusChange
from winkit.delivery.schemas import DeliveryStatus, OpenDelivery
from winkit.delivery.tracking import delivery_event, snapshot_event, status_event

# As the driver returns datetimes (tz_aware): in UTC, to the millisecond.
AT = datetime(2025, 3, 4, 5, 6, 7, 123000, tzinfo=utc)
ADDRESS = {
    "name": "A",
    "phone": "+919876543210",
    "line1": "12 MG Road",
    "line2": None,
    "landmark": None,
    "city": "Bengaluru",
    "pincode": "560001",
}
STORED = {
    "_id": "65f000000000000000000001",
    "user_id": "u1",
    "status": "CONFIRMED",
    "history": [{"status": "PLACED", "at": AT, "by": "system"}, {"status": "CONFIRMED", "at": AT, "by": "staff1"}],
    "version": 2,
    "items": [{"product_id": "p1", "name": "Milk", "quantity": 3}],
    "address": ADDRESS,
    "total_paise": 36050,
    "placed_at": AT,
    "promised_at": AT,
    "created_at": AT,
    "updated_at": AT,
}
# Opened before orders carried items, an address, a total and times.
STORED_EARLY = {
    "_id": "o2",
    "user_id": "u2",
    "status": "PLACED",
    "history": [{"status": "PLACED", "at": AT, "by": "system"}],
    "version": 1,
    "created_at": AT,
    "updated_at": AT,
}

HISTORY_JSON = (
    '"history":[{"status":"PLACED","at":"2025-03-04T05:06:07.123000Z","by":"system"},'
    '{"status":"CONFIRMED","at":"2025-03-04T05:06:07.123000Z","by":"staff1"}]'
)
STATUS_JSON = (
    '{"order_id":"65f000000000000000000001","status":"CONFIRMED",' + HISTORY_JSON + ',"allowed_next":["PACKED",'
    '"CANCELLED"],"updated_at":"2025-03-04T05:06:07.123000Z","promised_at":"2025-03-04T05:06:07.123000Z",'
    '"version":2}'
)
# Streams write datetimes with "+00:00" (HTTP answers with "Z"): as they always have.
STREAMED_HISTORY = HISTORY_JSON.replace("Z", "+00:00")
STREAMED_STATUS = (
    '{"order_id":"65f000000000000000000001","status":"CONFIRMED",' + STREAMED_HISTORY + ',"allowed_next":["PACKED",'
    '"CANCELLED"],"updated_at":"2025-03-04T05:06:07.123000+00:00","promised_at":"2025-03-04T05:06:07.123000+00:00",'
    '"version":2}'
)
STREAMED_DELIVERY = STREAMED_STATUS[:-1] + (
    ',"user_id":"u1","items":[{"product_id":"p1","name":"Milk","quantity":3}],"address":{"name":"A",'
    '"phone":"+919876543210","line1":"12 MG Road","line2":null,"landmark":null,"city":"Bengaluru",'
    '"pincode":"560001"},"total":360.5,"currency":"INR","placed_at":"2025-03-04T05:06:07.123000+00:00"}'
)
STREAMED_EARLY = (
    '{"order_id":"o2","status":"PLACED","history":[{"status":"PLACED","at":"2025-03-04T05:06:07.123000+00:00",'
    '"by":"system"}],"allowed_next":["CONFIRMED","CANCELLED"],"updated_at":"2025-03-04T05:06:07.123000+00:00",'
    '"promised_at":null,"version":1,"user_id":"u2","items":[],"address":null,"total":null,"currency":"INR",'
    '"placed_at":null}'
)


def test_a_record_reads_and_writes_back_exactly_as_stored():
    record = DeliveryRecord.from_document(STORED)
    assert record.order_id == "65f000000000000000000001"
    assert record.status is OrderStatus.CONFIRMED
    assert record.address == ShippingAddress.model_validate(ADDRESS)
    # The bytes the driver writes: the same fields, in the same order, of the same types.
    assert bson.encode(record.to_document()) == bson.encode(STORED)


def test_an_early_record_reads_with_nothing_to_pack_and_no_address():
    record = DeliveryRecord.from_document(STORED_EARLY)
    assert record.items == []
    assert record.address is record.total_paise is record.placed_at is record.promised_at is None


def test_a_status_change_is_stored_as_a_history_entry():
    change = StatusChange(status=OrderStatus.PACKED, at=AT, by="staff1")
    assert bson.encode(change.to_document()) == bson.encode({"status": "PACKED", "at": AT, "by": "staff1"})


def order_created(**changes: object) -> OrderCreated:
    """order.created's data as the bus hands it over (validated from the wire)."""
    data = {
        "order_id": "65f000000000000000000009",
        "user_id": "u9",
        "items": [{"product_id": "p1", "name": "Milk", "price_paise": 12000, "quantity": 3, "image": "milk.png"}],
        "total_paise": 36050,
        "address": ADDRESS,
        "created_at": "2025-03-04T05:00:00+00:00",
        "placed_at": "2025-03-04T05:00:01+00:00",
        "promised_at": "2025-03-04T05:10:01+00:00",
        **changes,
    }
    return OrderCreated.model_validate(data)


def test_an_order_opens_at_placed_with_what_staff_need():
    record = DeliveryRecord.placed(order_created(), AT)
    assert bson.encode(record.to_document()) == bson.encode(
        {
            "_id": "65f000000000000000000009",
            "user_id": "u9",
            "status": "PLACED",
            "history": [{"status": "PLACED", "at": AT, "by": "system"}],
            "version": 1,
            "items": [{"product_id": "p1", "name": "Milk", "quantity": 3}],
            "address": ADDRESS,
            "total_paise": 36050,
            "placed_at": datetime(2025, 3, 4, 5, 0, 1, tzinfo=utc),
            "promised_at": datetime(2025, 3, 4, 5, 10, 1, tzinfo=utc),
            "created_at": AT,
            "updated_at": AT,
        }
    )


def test_an_order_from_before_placed_at_and_addresses_opens_placed_when_created():
    record = DeliveryRecord.placed(order_created(placed_at=None, promised_at=None, address=None), AT)
    assert record.placed_at == datetime(2025, 3, 4, 5, 0, tzinfo=utc)
    assert (record.promised_at, record.address) == (None, None)


def test_http_answers_are_built_from_records():
    record = DeliveryRecord.from_document(STORED)
    assert DeliveryStatus.of(record).model_dump_json() == STATUS_JSON
    assert OpenDelivery.of(record).model_dump_json() == STREAMED_DELIVERY.replace("+00:00", "Z")
    early = OpenDelivery.of(DeliveryRecord.from_document(STORED_EARLY)).model_dump_json()
    assert early == STREAMED_EARLY.replace("+00:00", "Z")


def test_stream_events_keep_their_bytes():
    record = DeliveryRecord.from_document(STORED)
    early = DeliveryRecord.from_document(STORED_EARLY)
    assert encode(status_event(record)) == f"event: status\ndata: {STREAMED_STATUS}\n\n".encode()
    assert encode(delivery_event(record)) == f"event: delivery\ndata: {STREAMED_DELIVERY}\n\n".encode()
    snapshot = f"event: snapshot\ndata: [{STREAMED_DELIVERY},{STREAMED_EARLY}]\n\n".encode()
    assert encode(snapshot_event([record, early])) == snapshot
