"""The app factory every service is built with: same middleware, errors, health and metrics."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any, TypeVar

import structlog
from fastapi import APIRouter, FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from winkit import __version__
from winkit.core import idempotency, tracing
from winkit.core.auth import JwksSource, TokenVerifier
from winkit.core.database import close, connect, is_reachable, service_database
from winkit.core.docs import install_docs
from winkit.core.errors import (
    PROBLEM_TYPE_BASE,
    install_error_handlers,
    problem_response,
)
from winkit.core.idempotency import IdempotencyMiddleware
from winkit.core.observability import Metrics, RequestContextMiddleware, configure_logging
from winkit.core.settings import ServiceName, Settings
from winkit.core.urls import RelativeRedirects

Startup = Callable[[FastAPI, AsyncExitStack], Awaitable[None]]

log = structlog.get_logger("winkit.service")


T = TypeVar("T")


def from_state(name: str, kind: type[T]) -> Callable[[Request], T]:
    """A dependency on the domain object of type ``kind`` the app built at start-up
    (``app.state.<name>``): routes get it typed, and a wrong wiring fails loudly."""

    def dependency(request: Request) -> T:
        value = getattr(request.app.state, name)
        if not isinstance(value, kind):
            raise TypeError(f"app.state.{name} is a {type(value).__name__}, not a {kind.__name__}")
        return value

    return dependency


def allow_cors(app: FastAPI, settings: Settings) -> None:
    """Browsers may call from the configured origins only; others get no grant."""
    app.add_middleware(
        CORSMiddleware,
        allow_origins=settings.cors_origins,
        allow_credentials=True,
        allow_methods=["*"],
        allow_headers=["*"],
        expose_headers=["X-Request-ID", "Retry-After"],
    )


class UnexpectedErrorMiddleware:
    """Turns an unhandled exception into a 500 problem inside the request-id middleware,
    so even that response carries X-Request-ID and no stack trace reaches the client."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception:
            log.exception("unhandled_error", path=scope["path"])
            if started:
                raise
            response = problem_response(500, "Something went wrong on our side; it has been logged.")
            await response(scope, receive, send)


def create_service_app(
    *,
    name: ServiceName,
    settings: Settings,
    router: APIRouter,
    startup: Startup,
    title: str,
    description: str,
) -> FastAPI:
    configure_logging(settings.log_level)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        client = connect(settings, name)
        app.state.settings = settings
        app.state.db = service_database(client, name)
        app.state.token_verifier = TokenVerifier(
            JwksSource(settings.effective_jwks_url, settings.jwks_cache_seconds), settings
        )
        try:
            async with AsyncExitStack() as stack:
                await idempotency.ensure_indexes(app.state.db)
                await startup(app, stack)
                log.info("service_started", service=name, version=__version__)
                yield
        finally:
            await close(client)
            if traced:
                await tracing.stop()

    app = FastAPI(
        title=title,
        description=description,
        version=__version__,
        lifespan=lifespan,
        # An API answers a path it does not have with a 404 problem, not a redirect that
        # clients (and other services) would have to follow.
        redirect_slashes=False,
        docs_url=None,  # offline Swagger UI instead, below
        redoc_url=None,
        responses={"default": {"description": "Problem details (RFC 9457)"}},
    )
    install_error_handlers(app)
    install_docs(app, title)
    # Before the lifespan connects to MongoDB: its client picks up the tracing listener.
    traced = tracing.instrument(app, name)
    metrics = Metrics(name)
    app.state.metrics = metrics  # other parts add their own (the event bus's dead letters)

    @app.get("/", tags=["service"], summary="Service name and version")
    async def root() -> dict[str, str]:
        return {"service": name, "version": __version__}

    @app.get("/health", tags=["service"], summary="Healthy while the database answers")
    async def health(request: Request) -> Any:
        checks = {"mongodb": "ok" if await is_reachable(request.app.state.db) else "down"}
        bus = getattr(request.app.state, "bus", None)
        if bus is not None:
            # Reported, not fatal: the service keeps serving and catches up when NATS returns.
            checks["nats"] = "ok" if bus.connected else "down"
        if checks["mongodb"] != "ok":
            return problem_response(
                503,
                f"The {name} database does not answer.",
                type_=PROBLEM_TYPE_BASE + "unhealthy",
                service=name,
                checks=checks,
            )
        return {"status": "ok", "service": name, "version": __version__, "checks": checks}

    app.add_route("/metrics", metrics.render, include_in_schema=False)
    app.include_router(router)
    app.add_middleware(IdempotencyMiddleware)
    app.add_middleware(UnexpectedErrorMiddleware)
    allow_cors(app, settings)
    app.add_middleware(RelativeRedirects)
    app.add_middleware(RequestContextMiddleware, metrics=metrics)
    return app
