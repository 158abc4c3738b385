"""Delivery routes: thin, they check the caller and hand over to the domain."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body

from winkit.delivery.schemas import DeliveryStatus, StatusUpdate
from winkit.delivery.tracking import Tracking
from winkit.platform.auth import CurrentPrincipal, StaffPrincipal
from winkit.platform.service import from_state

router = APIRouter(tags=["delivery"])


TrackingDep = Annotated[Tracking, from_state("tracking")]


@router.get("/order/{order_id}/status", response_model=DeliveryStatus)
async def order_status(order_id: str, principal: CurrentPrincipal, tracking: TrackingDep) -> dict[str, Any]:
    """The order's delivery status and history (its owner or staff)."""
    return await tracking.status(principal, order_id)


@router.post("/order/{order_id}/update-status", response_model=DeliveryStatus)
async def update_status(
    order_id: str,
    principal: StaffPrincipal,
    tracking: TrackingDep,
    body: Annotated[StatusUpdate | None, Body()] = None,
) -> dict[str, Any]:
    """Staff only. No body: one step along PLACED → CONFIRMED → PACKED → OUT_FOR_DELIVERY →
    DELIVERED. ``{"status": X}``: X if allowed (CANCELLED from PLACED, CONFIRMED or PACKED).
    Anything else is 409 naming the allowed next states."""
    return await tracking.update(principal, order_id, body.status if body else None)
