"""Builds the delivery & order status service app."""

from __future__ import annotations

from contextlib import AsyncExitStack

from fastapi import FastAPI

from winkit.delivery import api
from winkit.delivery.store import DeliveryStore
from winkit.delivery.tracking import Tracking
from winkit.platform.events import Outbox, start_event_bus
from winkit.platform.service import create_service_app
from winkit.platform.settings import Settings


async def _startup(app: FastAPI, stack: AsyncExitStack) -> None:
    store = DeliveryStore(app.state.db)
    outbox = Outbox(app.state.db)
    tracking = Tracking(store, outbox)
    app.state.tracking = tracking

    await start_event_bus(
        app,
        stack,
        "delivery",
        outbox,
        {"order.created": tracking.open_in, "order.cancelled": tracking.cancel_in},
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
