"""Builds the app server (:8080): the Flet web app, its Flutter build served compressed,
and /health. Like the services, ``create_app`` is the factory uvicorn runs."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import flet_web.fastapi as flet_fastapi
from fastapi import FastAPI
from flet_web import get_package_web_dir

from winkit import __version__
from winkit.app.assets import CompressedAssets
from winkit.app.main import api_client, build_main
from winkit.core.observability import configure_logging
from winkit.core.settings import Settings
from winkit.core.urls import RelativeRedirects


def create_app(settings: Settings | None = None) -> CompressedAssets:
    settings = settings or Settings()
    configure_logging(settings.log_level)
    http = api_client(settings.effective_app_api_url)
    # Filled below, once the parts to stop exist; Flet's lifespan runs them at shutdown.
    on_shutdown: list[Callable[[], Awaitable[None] | None]] = []
    # Flet's FastAPI subclass (its lifespan runs Flet's sessions), typed as what it is.
    server: FastAPI = flet_fastapi.FastAPI(
        title="Winkit app",
        version=__version__,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        on_shutdown=on_shutdown,
    )
    assets = CompressedAssets(
        RelativeRedirects(server), web_dir=get_package_web_dir(), cache_dir=settings.data_dir / "app-cache"
    )
    on_shutdown += [assets.close, http.aclose]

    @server.get("/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "service": "app", "version": __version__, "assets": assets.status()}

    # Flet's own routes (its websocket, the web build) take everything else.
    server.mount("/", flet_fastapi.app(build_main(http), no_cdn=True, app_name="Winkit", app_short_name="Winkit"))
    return assets
