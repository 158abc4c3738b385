"""The delivery status machine: the only transitions a status may take."""

from __future__ import annotations

from enum import StrEnum


class Status(StrEnum):
    PLACED = "PLACED"
    CONFIRMED = "CONFIRMED"
    PACKED = "PACKED"
    OUT_FOR_DELIVERY = "OUT_FOR_DELIVERY"
    DELIVERED = "DELIVERED"
    CANCELLED = "CANCELLED"


FLOW = (Status.PLACED, Status.CONFIRMED, Status.PACKED, Status.OUT_FOR_DELIVERY, Status.DELIVERED)
# Staff may cancel until the parcel leaves; a shopper only until the store starts packing.
CANCELLABLE = frozenset({Status.PLACED, Status.CONFIRMED, Status.PACKED})
SHOPPER_CANCELLABLE = frozenset({Status.PLACED, Status.CONFIRMED})
FINAL = frozenset({Status.DELIVERED, Status.CANCELLED})
OPEN = tuple(status for status in Status if status not in FINAL)


class TransitionRefused(Exception):
    def __init__(self, current: Status, requested: Status | None) -> None:
        self.current = current
        self.requested = requested
        self.allowed = allowed_next(current)
        super().__init__(f"{current} -> {requested}")


def allowed_next(current: Status) -> list[Status]:
    """The states ``current`` may move to, in the order staff would normally pick them."""
    if current in FINAL:
        return []
    following = [FLOW[FLOW.index(current) + 1]]
    return following + [Status.CANCELLED] if current in CANCELLABLE else following


def next_status(current: Status, requested: Status | None) -> Status:
    """The status after an update: one step along the flow when none is requested."""
    allowed = allowed_next(current)
    if requested is None:
        if not allowed or allowed[0] == Status.CANCELLED:
            raise TransitionRefused(current, None)
        return allowed[0]
    if requested not in allowed:
        raise TransitionRefused(current, requested)
    return requested
