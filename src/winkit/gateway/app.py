"""The gateway's Python app, behind Envoy: what Envoy cannot do itself.

Envoy (``winkit.gateway.envoy``) is the front door and routes ``/api/<service>/…`` itself;
it sends only ``/``, ``/health``, ``/openapi.json`` and ``/docs`` here.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from typing import Any

import structlog
from fastapi import FastAPI

from winkit import __version__
from winkit.core.docs import install_docs
from winkit.core.errors import PROBLEM_TYPE_BASE, install_error_handlers, problem_response
from winkit.core.observability import configure_logging
from winkit.core.settings import SERVICE_NAMES, ServiceName, Settings
from winkit.gateway.openapi import CombinedOpenApi
from winkit.gateway.upstreams import Upstreams

log = structlog.get_logger("winkit.gateway")


def create_app(settings: Settings | None = None, *, services: Iterable[ServiceName] = SERVICE_NAMES) -> FastAPI:
    """The gateway's pages for ``services`` (all four unless a test runs fewer)."""
    settings = settings or Settings()
    configure_logging(settings.log_level)
    upstreams = Upstreams(settings, services)
    combined_openapi = CombinedOpenApi(upstreams)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        async with upstreams.connect():
            log.info("gateway_started", version=__version__, services=list(upstreams.urls))
            yield

    app = FastAPI(
        title="Winkit API",
        description="Every Winkit service behind one gateway, each under /api/<service>.",
        version=__version__,
        lifespan=lifespan,
        redirect_slashes=False,
        openapi_url=None,  # replaced by the combined document below
        docs_url=None,
        redoc_url=None,
        responses={"default": {"description": "Problem details (RFC 9457)"}},
    )
    install_error_handlers(app)
    install_docs(app, "Winkit API")

    @app.get("/", tags=["gateway"], summary="Service name and version")
    async def root() -> dict[str, str]:
        return {"service": "gateway", "version": __version__}

    @app.get("/health", tags=["gateway"], summary="Healthy while every service is")
    async def health() -> Any:
        states = await upstreams.health()
        down = [name for name, state in states.items() if state != "ok"]
        if down:
            return problem_response(
                503,
                f"Not answering: {', '.join(down)}.",
                type_=PROBLEM_TYPE_BASE + "unhealthy",
                down=down,
                services=states,
            )
        return {"status": "ok", "services": states}

    @app.get("/openapi.json", include_in_schema=False)
    async def openapi() -> dict[str, Any]:
        return await combined_openapi.document(app.openapi())

    return app
