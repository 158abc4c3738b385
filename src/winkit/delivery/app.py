"""Builds the delivery & order status service app."""

from __future__ import annotations

from contextlib import AsyncExitStack

from fastapi import APIRouter, FastAPI

from winkit.core.auth import ServiceTokens
from winkit.core.event_contracts import DeliveryOpened, DeliveryStatusChanged, OrderCreated
from winkit.core.events import On, start_event_bus
from winkit.core.keys import service_secret
from winkit.core.outbox import Outbox
from winkit.core.service import create_service_app
from winkit.core.settings import Settings
from winkit.delivery import api
from winkit.delivery.live import LiveUpdates
from winkit.delivery.store import DeliveryStore
from winkit.delivery.tracking import Tracking


async def _startup(app: FastAPI, stack: AsyncExitStack) -> None:
    outbox = Outbox(app.state.db, "delivery")
    store = DeliveryStore(app.state.db, outbox)
    await store.ensure_indexes()
    live = LiveUpdates(store)
    tracking = Tracking(store, live, app.state.settings.sse_heartbeat_seconds)
    app.state.tracking = tracking
    app.state.service_tokens = ServiceTokens(service_secret(app.state.settings), "delivery")

    await start_event_bus(
        app,
        stack,
        outbox,
        # A shopper's cancellation is decided here, synchronously: order.cancelled follows it.
        [On(OrderCreated, tracking.open)],
        [On(DeliveryOpened, live.hear), On(DeliveryStatusChanged, live.hear)],
    )


def create_app(settings: Settings | None = None) -> FastAPI:
    router = APIRouter()
    router.include_router(api.router)
    router.include_router(api.internal_router)
    return create_service_app(
        name="delivery",
        settings=settings or Settings(),
        router=router,
        startup=_startup,
        title="Winkit delivery & order status",
        description="Delivery records from order events and the order's status lifecycle.",
    )
