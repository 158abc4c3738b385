"""Delivery routes: thin, they check the caller, hand over to the domain and answer with
the schema of what it returns."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Depends, Query
from fastapi.sse import EventSourceResponse

from winkit.core.auth import CallingService, CurrentPrincipal, StaffPrincipal
from winkit.core.order_status import OrderStatus
from winkit.core.service import from_state
from winkit.core.sse import STREAM_RESPONSE, event_stream
from winkit.delivery.schemas import DeliveryStatus, OpenDelivery, ShopperCancellation, StatusUpdate
from winkit.delivery.tracking import BOARD_LIMIT, Tracking

router = APIRouter(tags=["delivery"])


TrackingDep = Annotated[Tracking, Depends(from_state("tracking", Tracking))]


@router.get("/order/{order_id}/status", response_model=DeliveryStatus)
async def order_status(order_id: str, principal: CurrentPrincipal, tracking: TrackingDep) -> DeliveryStatus:
    """The order's delivery status and history (its owner or staff)."""
    return DeliveryStatus.of(await tracking.status(principal, order_id))


@router.get("/order/{order_id}/events", responses=STREAM_RESPONSE)
async def order_events(order_id: str, principal: CurrentPrincipal, tracking: TrackingDep) -> EventSourceResponse:
    """Live tracking (its owner or staff): a ``status`` event (as ``/status``) at once and on
    every change, heartbeats while nothing happens, and ``end`` once the order is final."""
    return event_stream(await tracking.order_events(principal, order_id))


@router.post("/order/{order_id}/update-status", response_model=DeliveryStatus)
async def update_status(
    order_id: str,
    principal: StaffPrincipal,
    tracking: TrackingDep,
    body: Annotated[StatusUpdate | None, Body()] = None,
) -> DeliveryStatus:
    """Staff only. No body: one step along PLACED → CONFIRMED → PACKED → OUT_FOR_DELIVERY →
    DELIVERED. ``{"status": X}``: X if allowed (CANCELLED from PLACED, CONFIRMED or PACKED).
    Anything else is 409 naming the allowed next states."""
    return DeliveryStatus.of(await tracking.update(principal, order_id, body.status if body else None))


@router.get("/deliveries", response_model=list[OpenDelivery], tags=["staff"])
async def open_deliveries(
    _: StaffPrincipal,
    tracking: TrackingDep,
    status: Annotated[
        list[OrderStatus] | None, Query(description="Only these statuses (default: every open one)")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = BOARD_LIMIT,
) -> list[OpenDelivery]:
    """Staff only: the queue of deliveries, oldest first, with items, address and total."""
    return [OpenDelivery.of(record) for record in await tracking.open_deliveries(status, limit)]


@router.get("/deliveries/events", responses=STREAM_RESPONSE, tags=["staff"])
async def board_events(_: StaffPrincipal, tracking: TrackingDep) -> EventSourceResponse:
    """Staff only: ``snapshot`` (every open delivery) at once, then ``delivery`` for each new
    or changed one (a final status means it leaves the board), heartbeats in between."""
    return event_stream(tracking.board_events())


# Server to server only (a service token is required); the gateway does not expose it.
internal_router = APIRouter(prefix="/internal", tags=["internal"])


@internal_router.post("/deliveries/{order_id}/cancel", response_model=DeliveryStatus)
async def cancel_for_shopper(
    order_id: str, body: ShopperCancellation, _: CallingService, tracking: TrackingDep
) -> DeliveryStatus:
    """The shopper's cancellation (asked through the cart & order service): 200 once the
    order is CANCELLED, 409 when it is past PLACED or CONFIRMED."""
    return DeliveryStatus.of(await tracking.cancel_for_shopper(order_id, body.user_id, body.order))
