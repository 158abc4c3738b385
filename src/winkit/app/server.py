"""The app server on :8080: the Flet web app, its compressed build, and /health."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import flet_web.fastapi as flet_fastapi
from fastapi import FastAPI
from flet_web import get_package_web_dir
from starlette.types import ASGIApp

from winkit import __version__
from winkit.app.assets import CompressedAssets
from winkit.app.main import api_client, build_main
from winkit.platform.observability import configure_logging
from winkit.platform.settings import Settings


def create_app(settings: Settings | None = None) -> ASGIApp:
    settings = settings or Settings()
    configure_logging(settings.log_level)
    http = api_client(settings.effective_app_api_url)
    assets = CompressedAssets(
        _flet_server(settings, http), web_dir=get_package_web_dir(), cache_dir=settings.data_dir / "app-cache"
    )
    return assets


def _flet_server(settings: Settings, http: Any) -> FastAPI:
    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        await http.aclose()

    app = flet_fastapi.FastAPI(title="Winkit app", version=__version__, docs_url=None, redoc_url=None, openapi_url=None)

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "service": "app", "version": __version__}

    app.mount("/", flet_fastapi.app(build_main(http), no_cdn=True, app_name="Winkit", app_short_name="Winkit"))
    return app
