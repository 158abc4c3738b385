"""Builds the delivery & order status service app."""

from __future__ import annotations

from contextlib import AsyncExitStack

from fastapi import FastAPI

from winkit.delivery import api
from winkit.delivery.live import LiveUpdates
from winkit.delivery.store import DeliveryStore
from winkit.delivery.tracking import Tracking
from winkit.platform.events import Outbox, start_event_bus
from winkit.platform.service import create_service_app
from winkit.platform.settings import Settings


async def _startup(app: FastAPI, stack: AsyncExitStack) -> None:
    store = DeliveryStore(app.state.db)
    await store.ensure_indexes()
    outbox = Outbox(app.state.db)
    live = LiveUpdates(store)
    tracking = Tracking(store, outbox, live, app.state.settings.sse_heartbeat_seconds)
    app.state.tracking = tracking

    await start_event_bus(
        app,
        stack,
        "delivery",
        outbox,
        {"order.created": tracking.open_in, "order.cancelled": tracking.cancel_in},
        listeners={"delivery.opened": live.hear, "delivery.status_changed": live.hear},
    )


def create_app(settings: Settings | None = None) -> FastAPI:
    return create_service_app(
        name="delivery",
        settings=settings or Settings(),
        router=api.router,
        startup=_startup,
        title="Winkit delivery & order status",
        description="Delivery records from order events and the order's status lifecycle.",
    )
