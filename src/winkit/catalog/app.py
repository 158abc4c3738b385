"""Builds the catalog service app."""

from __future__ import annotations

from contextlib import AsyncExitStack

from fastapi import APIRouter, FastAPI
from starlette.middleware import Middleware

from winkit.catalog import api
from winkit.catalog.http_cache import CachedReads, ResponseCache
from winkit.catalog.products import Catalog
from winkit.catalog.read_model import CatalogReadModel
from winkit.catalog.read_model_sync import ReadModelSync
from winkit.catalog.stock import Stock
from winkit.catalog.store import CatalogStore
from winkit.core.auth import ServiceTokens
from winkit.core.event_contracts import OrderCancelled, OrderCreated, ProductChanged, StockChanged
from winkit.core.events import On, start_event_bus
from winkit.core.keys import service_secret
from winkit.core.outbox import Outbox
from winkit.core.service import create_service_app
from winkit.core.settings import Settings


async def _startup(app: FastAPI, stack: AsyncExitStack) -> None:
    settings: Settings = app.state.settings
    outbox = Outbox(app.state.db, "catalog")
    store = CatalogStore(app.state.db, outbox)
    await store.ensure_indexes()
    read_model = CatalogReadModel(settings.effective_public_api_url)
    stock = Stock(store, read_model)
    app.state.catalog = Catalog(store, read_model)
    app.state.stock = stock
    app.state.service_tokens = ServiceTokens(service_secret(settings), "catalog")
    seed = settings.seed_demo_catalog if settings.seed_demo_catalog is not None else settings.env == "dev"
    if seed:
        await app.state.catalog.seed_demo()

    sync = ReadModelSync(store, read_model)
    await sync.load()
    app.state.read_model = read_model
    app.state.response_cache = ResponseCache(read_model)
    bus = await start_event_bus(
        app,
        stack,
        outbox,
        [On(OrderCreated, stock.confirm), On(OrderCancelled, stock.release_for)],
        [On(ProductChanged, sync.hear), On(StockChanged, sync.hear)],
    )
    sync.start(bus)
    app.state.read_model_sync = sync
    stack.push_async_callback(sync.stop)


def create_app(settings: Settings | None = None) -> FastAPI:
    router = APIRouter()
    router.include_router(api.router)
    router.include_router(api.internal_router)
    app = create_service_app(
        name="catalog",
        settings=settings or Settings(),
        router=router,
        startup=_startup,
        title="Winkit catalog",
        description="Products, categories, images and stock.",
    )
    # Innermost, after the core's middleware (request ids, metrics, CORS), before routing.
    app.user_middleware.append(Middleware(CachedReads))
    return app
