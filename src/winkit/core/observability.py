"""Request ids, structured JSON logs and Prometheus metrics for every service."""

from __future__ import annotations

import logging
import re
import sys
import threading
import time
import uuid
from types import TracebackType
from typing import Any, TextIO, cast

import structlog
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from structlog.typing import EventDict, Processor

REQUEST_ID_HEADER = "x-request-id"
_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


# Third-party loggers whose INFO (or DEBUG) lines are noise or carry what must not be
# logged: httpx and httpcore log every call's URL, query string included; pymongo's
# command log holds documents; Flet's transport and control logs hold a session's
# messages and events (what people type). They log from WARNING up whatever the level.
QUIET_LOGGERS = (
    "httpx",
    "httpcore",
    "hpack",
    "pymongo",
    "flet_transport",
    "flet_controls",
    "websockets",
    "multipart",
)
# uvicorn installs its own handlers (plain text on stderr) before the app factory runs:
# configure_logging takes them away, so uvicorn's lines go through the root handler too.
UVICORN_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi")

_REDACTED = "[redacted]"
# Values logged under these names are personal data or secrets, whatever they look like.
_SECRET_KEYS = frozenset(
    {
        "email",
        "password",
        "new_password",
        "otp",
        "one_time_code",
        "token",
        "access_token",
        "refresh_token",
        "authorization",
        "phone",
        "secret",
    }
)
_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+(?:@|%40)(?:[A-Za-z0-9-]+\.)+[A-Za-z]{2,}")
_BEARER = re.compile(r"(?i)\b(bearer)(\s+|%20|\+)[A-Za-z0-9._~+/=-]+")
_JWT = re.compile(r"\beyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*")
_URL_CREDENTIALS = re.compile(r"(?<=://)[^/\s@\"\\]+@")


def redact_text(text: str) -> str:
    """No email address, bearer token or credentials in a URL left in ``text``."""
    # Cheap tests first: most lines hold none of these and cost only the `in` checks.
    if "@" in text or "%40" in text:
        if "://" in text:
            text = _URL_CREDENTIALS.sub(_REDACTED + "@", text)
        text = _EMAIL.sub(_REDACTED, text)
    if "eyJ" in text:
        text = _JWT.sub(_REDACTED, text)
    if "earer" in text or "EARER" in text:
        text = _BEARER.sub(lambda match: f"{match[1]} {_REDACTED}", text)
    return text


def redact_secret_fields(_: object, __: str, event_dict: EventDict) -> EventDict:
    """Values logged under names such as ``email`` or ``password`` are replaced whole."""
    for key in _SECRET_KEYS.intersection(event_dict):
        if event_dict[key] is not None:
            event_dict[key] = _REDACTED
    return event_dict


_render_json = structlog.processors.JSONRenderer()


def render_redacted_json(logger: object, name: str, event_dict: EventDict) -> str:
    """The line as JSON, then the safety net over all of it (every field, a traceback or a
    library's own message included), in one pass over one string. The event comes first:
    it is what a person scans for."""
    line = _render_json(logger, name, {"event": event_dict.pop("event", None), **event_dict})
    # The default serializer (json.dumps) gives text; only a bytes serializer would not.
    return redact_text(cast(str, line))


# What every line gets, whether structlog or the standard library's logging wrote it.
_SHARED_PROCESSORS: list[Processor] = [
    structlog.contextvars.merge_contextvars,
    structlog.stdlib.add_log_level,
    structlog.stdlib.add_logger_name,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
]


# How every line ends: tracebacks rendered, secrets redacted, one JSON object.
_RENDERING: list[Processor] = [structlog.processors.format_exc_info, redact_secret_fields, render_redacted_json]


def _json_formatter() -> logging.Formatter:
    """Renders a standard-library log record as one JSON object on one line."""
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=_SHARED_PROCESSORS,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *_RENDERING],
    )


class _StdoutLineLogger:
    """Where structlog's own lines go: straight to whatever sys.stdout is then (tests swap
    it), flushed. Skipping the standard library's records, caller lookup and handlers
    roughly halves what a request's access line costs (measured with py-spy under wrk)."""

    _lock = threading.Lock()

    def __init__(self, name: str | None = None) -> None:
        self.name = name or ""

    def msg(self, line: str) -> None:
        with self._lock:
            sys.stdout.write(line + "\n")
            sys.stdout.flush()

    debug = info = warning = error = critical = exception = msg


class _StdoutHandler(logging.StreamHandler[TextIO]):
    """Writes each record to whatever sys.stdout is then (tests swap it), and flushes it."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stdout
        super().emit(record)


def _json_handler() -> logging.Handler:
    handler = _StdoutHandler(sys.stdout)
    handler.setFormatter(_json_formatter())
    return handler


def _log_uncaught(kind: type[BaseException], error: BaseException, traceback: TracebackType | None) -> None:
    if issubclass(kind, KeyboardInterrupt):
        sys.__excepthook__(kind, error, traceback)
        return
    logging.getLogger("winkit").critical("uncaught_exception", exc_info=(kind, error, traceback))


def json_lines_handler() -> logging.Handler:
    """The handler uvicorn's --log-config names. It also has an exception nothing caught
    (the app factory failing, say on a bad setting) logged as JSON, not printed as a bare
    traceback on stderr."""
    sys.excepthook = _log_uncaught
    return _json_handler()


def configure_logging(level: str = "INFO") -> None:
    """JSON lines on stdout, with the request id bound by the middleware: structlog's own
    loggers and the standard library's (uvicorn, httpx, Flet, pymongo, nats, asyncio...)."""
    numeric = logging.getLevelName(level.upper())
    root = logging.getLogger()
    for old in root.handlers[:]:
        root.removeHandler(old)
    root.addHandler(_json_handler())
    root.setLevel(numeric)
    for name in UVICORN_LOGGERS:
        # Levels stay as uvicorn's --log-level set them; only the output changes.
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
    # uvicorn's access line would hold the query string and the client's address (and
    # --no-access-log is what every deployment passes): the middleware writes its own.
    logging.getLogger("uvicorn.access").disabled = True
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(max(numeric, logging.WARNING))
    logging.captureWarnings(True)
    structlog.configure(
        processors=[*_SHARED_PROCESSORS, *_RENDERING],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=_StdoutLineLogger,
        cache_logger_on_first_use=True,
    )


def uvicorn_log_config() -> dict[str, Any]:
    """For uvicorn's --log-config: JSON lines from uvicorn's first line on, before the app
    factory runs configure_logging (an app that fails to load says so in JSON too)."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "handlers": {"stdout": {"()": f"{__name__}.json_lines_handler"}},
        "root": {"handlers": ["stdout"], "level": "INFO"},
        "loggers": {
            **{name: {"level": "WARNING"} for name in QUIET_LOGGERS},
            **{name: {"handlers": [], "propagate": True} for name in UVICORN_LOGGERS},
            "uvicorn.access": {"handlers": [], "propagate": False},
        },
    }


def incoming_request_id(value: str | None) -> str:
    """Keep a caller's id when it is safe to log; otherwise issue a new one."""
    if value and _SAFE_REQUEST_ID.match(value):
        return value
    return uuid.uuid4().hex


class Metrics:
    """One registry per app, so several services can share a process (as in tests)."""

    def __init__(self, service: str) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "http_requests_total",
            "HTTP requests by route and status.",
            ["service", "method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "http_request_duration_seconds",
            "HTTP request latency by route.",
            ["service", "method", "route"],
            registry=self.registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
        )
        self.service = service

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests.labels(self.service, method, route, str(status)).inc()
        self.latency.labels(self.service, method, route).observe(seconds)

    def render(self, _: Request) -> Response:
        return Response(generate_latest(self.registry), media_type=CONTENT_TYPE_LATEST)


class RequestContextMiddleware:
    """Pure ASGI (no body buffering): request id in and out, one access log line, metrics."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics
        self.log = structlog.get_logger("winkit.access")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        request_id = incoming_request_id(headers.get(REQUEST_ID_HEADER.encode(), b"").decode("latin-1") or None)
        scope.setdefault("state", {})["request_id"] = request_id
        structlog.contextvars.bind_contextvars(request_id=request_id)
        status = 500
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [
                    *message.get("headers", []),
                    (b"x-request-id", request_id.encode()),
                ]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            self.metrics.observe(scope["method"], template, status, elapsed)
            self.log.info(
                "request",
                method=scope["method"],
                path=scope["path"],
                status=status,
                duration_ms=round(elapsed * 1000, 2),
            )
            structlog.contextvars.unbind_contextvars("request_id")
