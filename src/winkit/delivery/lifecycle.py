"""The delivery status machine: the only transitions a status may take."""

from __future__ import annotations

from winkit.core.order_status import OrderStatus

FLOW = (
    OrderStatus.PLACED,
    OrderStatus.CONFIRMED,
    OrderStatus.PACKED,
    OrderStatus.OUT_FOR_DELIVERY,
    OrderStatus.DELIVERED,
)
# Staff may cancel until the parcel leaves; a shopper only until the store starts packing.
CANCELLABLE = frozenset({OrderStatus.PLACED, OrderStatus.CONFIRMED, OrderStatus.PACKED})
SHOPPER_CANCELLABLE = frozenset({OrderStatus.PLACED, OrderStatus.CONFIRMED})
FINAL = frozenset({OrderStatus.DELIVERED, OrderStatus.CANCELLED})
OPEN = tuple(status for status in OrderStatus if status not in FINAL)


class TransitionRefused(Exception):
    def __init__(self, current: OrderStatus, requested: OrderStatus | None) -> None:
        self.current = current
        self.requested = requested
        self.allowed = allowed_next(current)
        super().__init__(f"{current} -> {requested}")


def allowed_next(current: OrderStatus) -> list[OrderStatus]:
    """The states ``current`` may move to, in the order staff would normally pick them."""
    if current in FINAL:
        return []
    following = [FLOW[FLOW.index(current) + 1]]
    return [*following, OrderStatus.CANCELLED] if current in CANCELLABLE else following


def next_status(current: OrderStatus, requested: OrderStatus | None) -> OrderStatus:
    """The status after an update: one step along the flow when none is requested."""
    allowed = allowed_next(current)
    if requested is None:
        if not allowed or allowed[0] == OrderStatus.CANCELLED:
            raise TransitionRefused(current, None)
        return allowed[0]
    if requested not in allowed:
        raise TransitionRefused(current, requested)
    return requested
