"""Builds the catalog service app."""

from __future__ import annotations

from contextlib import AsyncExitStack

from fastapi import APIRouter, FastAPI

from winkit.catalog import api
from winkit.catalog.products import Catalog
from winkit.catalog.stock import Stock
from winkit.catalog.store import CatalogStore
from winkit.platform.auth import ServiceTokens
from winkit.platform.events import Outbox, start_event_bus
from winkit.platform.keys import service_secret
from winkit.platform.service import create_service_app
from winkit.platform.settings import Settings


async def _startup(app: FastAPI, stack: AsyncExitStack) -> None:
    settings: Settings = app.state.settings
    store = CatalogStore(app.state.db)
    await store.ensure_indexes()
    outbox = Outbox(app.state.db)
    stock = Stock(store, outbox)
    app.state.catalog = Catalog(store, outbox)
    app.state.stock = stock
    app.state.service_tokens = ServiceTokens(service_secret(settings), "catalog")
    seed = settings.seed_demo_catalog if settings.seed_demo_catalog is not None else settings.env == "dev"
    if seed:
        await app.state.catalog.seed_demo()

    await start_event_bus(
        app,
        stack,
        "catalog",
        outbox,
        {
            "order.created": lambda session, data: stock.confirm_in(session, data["order_id"]),
            "order.cancelled": lambda session, data: stock.release_in(session, data["order_id"]),
        },
    )


def create_app(settings: Settings | None = None) -> FastAPI:
    router = APIRouter()
    router.include_router(api.router)
    router.include_router(api.internal_router)
    return create_service_app(
        name="catalog",
        settings=settings or Settings(),
        router=router,
        startup=_startup,
        title="Winkit catalog",
        description="Products, categories, images and stock.",
    )
