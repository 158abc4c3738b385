"""Builds the gateway app: the services' routes under /api/<service>, plus health and docs."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from typing import Any

import structlog
from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from starlette.middleware.gzip import GZipMiddleware

from winkit import __version__
from winkit.gateway.edge import Edge
from winkit.gateway.openapi import CombinedOpenApi
from winkit.gateway.policy import SERVICE_NAMES
from winkit.gateway.proxy import ServiceProxy
from winkit.gateway.upstreams import Upstreams
from winkit.platform.errors import PROBLEM_TYPE_BASE, install_error_handlers, problem_response
from winkit.platform.observability import Metrics, RequestContextMiddleware, configure_logging
from winkit.platform.service import UnexpectedErrorMiddleware, allow_cors
from winkit.platform.settings import ServiceName, Settings
from winkit.platform.urls import RelativeRedirects

log = structlog.get_logger("winkit.gateway")

# Below this a gzip body saves too little to be worth the CPU.
GZIP_MINIMUM_SIZE = 500
# zlib's own default: most of level 9's saving on JSON at a fraction of its cost.
GZIP_LEVEL = 6


def create_app(settings: Settings | None = None, *, services: Iterable[ServiceName] = SERVICE_NAMES) -> FastAPI:
    """The gateway in front of ``services`` (all four unless a test runs fewer)."""
    settings = settings or Settings()
    configure_logging(settings.log_level)
    upstreams = Upstreams(settings, services)
    edge = Edge(settings)
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
        # A path it does not have is a 404 problem, not a redirect clients must follow.
        redirect_slashes=False,
        openapi_url=None,  # replaced by the combined document below
        docs_url=None,
        redoc_url=None,
        responses={"default": {"description": "Problem details (RFC 9457)"}},
    )
    install_error_handlers(app)
    metrics = Metrics("gateway")

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

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url="/openapi.json", title="Winkit API")

    app.add_route("/metrics", metrics.render, include_in_schema=False)
    for name in upstreams.urls:
        proxy = ServiceProxy(name, upstreams, edge, settings.gateway_max_body_bytes)
        app.mount(proxy.prefix, proxy)

    # Innermost first. GZipMiddleware leaves bodies that already have a Content-Encoding
    # (a service's own compression, relayed untouched) as they are.
    app.add_middleware(GZipMiddleware, minimum_size=GZIP_MINIMUM_SIZE, compresslevel=GZIP_LEVEL)
    app.add_middleware(UnexpectedErrorMiddleware)
    allow_cors(app, settings)
    app.add_middleware(RelativeRedirects)
    app.add_middleware(RequestContextMiddleware, metrics=metrics)
    return app
