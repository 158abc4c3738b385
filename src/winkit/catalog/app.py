"""Builds the catalog service app."""

from __future__ import annotations

from contextlib import AsyncExitStack

from fastapi import FastAPI

from winkit.catalog import api
from winkit.catalog.products import Catalog
from winkit.catalog.store import CatalogStore
from winkit.platform.service import create_service_app
from winkit.platform.settings import Settings


async def _startup(app: FastAPI, _: AsyncExitStack) -> None:
    settings: Settings = app.state.settings
    store = CatalogStore(app.state.db)
    await store.ensure_indexes()
    app.state.catalog = Catalog(store)
    seed = settings.seed_demo_catalog if settings.seed_demo_catalog is not None else settings.env == "dev"
    if seed:
        await app.state.catalog.seed_demo()


def create_app(settings: Settings | None = None) -> FastAPI:
    return create_service_app(
        name="catalog",
        settings=settings or Settings(),
        router=api.router,
        startup=_startup,
        title="Winkit catalog",
        description="Products, categories, images and stock.",
    )
