"""What the cart & order service asks of the delivery service: to cancel for the shopper.

The delivery service owns the order's status, so it decides whether a cancellation still
wins (PLACED or CONFIRMED, version-checked against staff moving the order on).
"""

from __future__ import annotations

from urllib.parse import quote

from pydantic import BaseModel

from winkit.core.errors import Conflict, NotFound, ServiceUnavailable
from winkit.core.event_contracts import OrderCreated
from winkit.core.http import ServiceClient


class CancelledDelivery(BaseModel):
    """The delivery status once CANCELLED: what this service keeps of it."""

    version: int


class DeliveryClient:
    def __init__(self, client: ServiceClient) -> None:
        self._client = client

    async def cancel(self, order_id: str, user_id: str, order: OrderCreated) -> CancelledDelivery:
        """The delivery status once CANCELLED; Conflict when the order has gone too far.
        The order goes as ``order.created`` carries it: the delivery service opens its
        record from it if that event has not reached it yet."""
        body = {"user_id": user_id, "order": order.model_dump(mode="json")}
        response = await self._client.request(
            "POST", f"/internal/deliveries/{quote(order_id, safe='')}/cancel", json=body
        )
        if response.status_code == 409:
            problem = response.json()
            detail = problem.get("detail", "The order can no longer be cancelled.")
            raise Conflict(detail, current_status=problem.get("current_status"))
        if response.status_code == 404:
            raise NotFound(f"No order with id {order_id!r}.")
        if response.status_code != 200:
            raise ServiceUnavailable("The cancellation could not be made just now; try again shortly.")
        return CancelledDelivery.model_validate_json(response.content)
