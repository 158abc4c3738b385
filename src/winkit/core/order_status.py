"""The statuses an order shows, shared by the orders and delivery services' contracts (their
HTTP answers and the ``delivery.status_changed`` event). Which moves are allowed is the
delivery service's rule (``winkit.delivery.lifecycle``)."""

from __future__ import annotations

from enum import StrEnum


class OrderStatus(StrEnum):
    PLACED = "PLACED"
    CONFIRMED = "CONFIRMED"
    PACKED = "PACKED"
    OUT_FOR_DELIVERY = "OUT_FOR_DELIVERY"
    DELIVERED = "DELIVERED"
    CANCELLED = "CANCELLED"
