"""OpenTelemetry traces across the services, off unless the standard ``OTEL_*`` variables
ask for them (docs/tracing.md).

Off, nothing of OpenTelemetry is imported and no request pays for it: the helpers below
return at once. On, the process gets one tracer provider (service name ``winkit-<name>``
unless ``OTEL_SERVICE_NAME`` says otherwise), FastAPI server spans, httpx and pymongo
client spans, and spans around each NATS event published and handled, with the W3C trace
context carried in the message headers, so one checkout is one trace.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import TYPE_CHECKING, Any

from winkit import __version__

if TYPE_CHECKING:
    from collections.abc import Iterator

    from fastapi import FastAPI
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter
    from opentelemetry.trace import Tracer

# Health checks and metric scrapes come every few seconds and say nothing about a request.
UNTRACED_PATHS = "/health$,/metrics$"
# Milliseconds the spans still queued get to leave when the service stops.
FLUSH_TIMEOUT_MS = 5_000
DEFAULT_OTLP_ENDPOINT = "http://localhost:4318"

_provider: TracerProvider | None = None
_tracer: Tracer | None = None
# What the helpers give when tracing is off: no span, no headers.
_NOTHING: AbstractContextManager[dict[str, str]] = nullcontext({})


def wanted(environ: Mapping[str, str] = os.environ) -> bool:
    """Whether the environment turns traces on: an OTLP endpoint, or an exporter named in
    ``OTEL_TRACES_EXPORTER`` (``none`` is none); never with ``OTEL_SDK_DISABLED=true``."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    exporters = environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporters:
        return exporters != "none"
    return bool(environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"))


def otlp_traces_url(environ: Mapping[str, str] = os.environ) -> str | None:
    """Where traces go over OTLP/HTTP when they are on and exported by OTLP, as the SDK's
    exporter reads it: ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` as given, else
    ``OTEL_EXPORTER_OTLP_ENDPOINT`` with ``/v1/traces``."""
    exporters = (environ.get("OTEL_TRACES_EXPORTER") or "otlp").replace(" ", "").lower().split(",")
    if not wanted(environ) or not {"otlp", "otlp_proto_http"} & set(exporters):
        return None
    if traces := environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        return traces
    return environ.get("OTEL_EXPORTER_OTLP_ENDPOINT", DEFAULT_OTLP_ENDPOINT).rstrip("/") + "/v1/traces"


def start(service: str, exporter: SpanExporter | None = None) -> bool:
    """Trace this process as ``service`` if the environment asks for it, or into
    ``exporter`` if one is given (as tests do). The first call decides; later ones only say
    whether tracing is on. httpx and pymongo are instrumented here, for the whole process."""
    global _provider, _tracer
    if _provider is not None:
        return True
    if exporter is None and not wanted():
        return False
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
    from opentelemetry.instrumentation.pymongo import PymongoInstrumentor
    from opentelemetry.sdk.resources import OTELResourceDetector, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    # OTEL_SERVICE_NAME or a service.name in OTEL_RESOURCE_ATTRIBUTES win over ours.
    named = "service.name" in OTELResourceDetector().detect().attributes
    ours = {"service.version": __version__, **({} if named else {"service.name": f"winkit-{service}"})}
    # The sampler from OTEL_TRACES_SAMPLER(_ARG), the limits from OTEL_SPAN_*, the batch
    # from OTEL_BSP_*, the exporter's endpoint, headers and timeout from OTEL_EXPORTER_OTLP_*.
    provider = TracerProvider(resource=Resource.create(ours))
    provider.sampler = _without_background_roots(provider.sampler)
    for each in [exporter] if exporter is not None else _exporters():
        provider.add_span_processor(BatchSpanProcessor(each))
    # Both wrap the libraries, not clients: every client, made before or after, is traced.
    # pymongo's spans name the command and collection, never its documents (capture_statement is off).
    HTTPXClientInstrumentor().instrument(tracer_provider=provider)
    PymongoInstrumentor().instrument(tracer_provider=provider)
    _provider, _tracer = provider, provider.get_tracer("winkit.events", __version__)
    return True


def _exporters() -> list[SpanExporter]:
    """The exporters ``OTEL_TRACES_EXPORTER`` names (``otlp`` unless it says otherwise):
    OTLP is OTLP/HTTP, the one OTLP exporter installed; others by their entry point."""
    from importlib.metadata import entry_points

    names = [n.strip() for n in (os.environ.get("OTEL_TRACES_EXPORTER") or "otlp").lower().split(",") if n.strip()]
    exporters = []
    for name in names:
        if name == "none":
            continue
        found = entry_points(group="opentelemetry_traces_exporter", name="otlp_proto_http" if name == "otlp" else name)
        if not found:
            raise ValueError(f"OTEL_TRACES_EXPORTER names {name!r}, which is not installed")
        exporters.append(next(iter(found)).load()())
    return exporters


def _without_background_roots(configured: Any) -> Any:
    """The configured sampler, except that a client span with no parent (a database command
    or an HTTP call made outside any request or event) is not recorded: the outbox relay's
    sweep every second, health probes and periodic re-reads would each be a trace."""
    from opentelemetry.sdk.trace.sampling import Decision, Sampler, SamplingResult
    from opentelemetry.trace import SpanKind, get_current_span

    class WithoutBackgroundRoots(Sampler):
        def should_sample(
            self,
            parent_context: Any,
            trace_id: int,
            name: str,
            kind: SpanKind | None = None,
            attributes: Any = None,
            links: Any = None,
            trace_state: Any = None,
        ) -> SamplingResult:
            if kind is SpanKind.CLIENT and not get_current_span(parent_context).get_span_context().is_valid:
                return SamplingResult(Decision.DROP)
            result: SamplingResult = configured.should_sample(
                parent_context, trace_id, name, kind, attributes, links, trace_state
            )
            return result

        def get_description(self) -> str:
            return f"WithoutBackgroundRoots{{{configured.get_description()}}}"

    return WithoutBackgroundRoots()


def instrument(app: FastAPI, service: str) -> bool:
    """Server spans for ``app`` if this process traces (see ``start``); True if it does."""
    if not start(service):
        return False
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    FastAPIInstrumentor.instrument_app(
        app,
        tracer_provider=_provider,
        excluded_urls=_unless_set(UNTRACED_PATHS, "OTEL_PYTHON_FASTAPI_EXCLUDED_URLS", "OTEL_PYTHON_EXCLUDED_URLS"),
        # The request id links a span to the service's log lines (no other header is kept).
        http_capture_headers_server_request=_unless_set(
            ["x-request-id"], "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST"
        ),
        # One span per request, not one more per ASGI message (a live stream sends many).
        exclude_spans=["receive", "send"],
    )
    return True


def _unless_set(ours: Any, *variables: str) -> Any:
    """Our default, unless one of the instrumentation's own standard variables is set."""
    return None if any(os.environ.get(name) for name in variables) else ours


async def stop() -> None:
    """Send what is queued and stop tracing (the service is stopping)."""
    global _provider, _tracer
    provider, _provider, _tracer = _provider, None, None
    if provider is None:
        return
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
    from opentelemetry.instrumentation.pymongo import PymongoInstrumentor

    HTTPXClientInstrumentor().uninstrument()
    PymongoInstrumentor().uninstrument()
    # Exporting blocks on the network: not on the event loop.
    await asyncio.to_thread(provider.force_flush, FLUSH_TIMEOUT_MS)
    await asyncio.to_thread(provider.shutdown)


def current_context() -> dict[str, str]:
    """The current trace context as W3C headers (``traceparent``, ``tracestate``), to keep
    with an event in the outbox; empty when tracing is off or nothing is being traced."""
    if _tracer is None:
        return {}
    from opentelemetry import propagate

    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier


def sending(subject: str, message_id: str, context: Mapping[str, str] | None) -> AbstractContextManager[dict[str, str]]:
    """A producer span around publishing an event whose trace ``context`` was kept in the
    outbox; gives the headers that carry the span's context to consumers."""
    if _tracer is None or not context:
        return _NOTHING
    return _sending(_tracer, subject, message_id, context)


@contextmanager
def _sending(tracer: Tracer, subject: str, message_id: str, context: Mapping[str, str]) -> Iterator[dict[str, str]]:
    from opentelemetry import propagate
    from opentelemetry.trace import SpanKind

    attributes = _messaging(subject, "send", message_id)
    with tracer.start_as_current_span(
        f"send {subject}", context=propagate.extract(context), kind=SpanKind.PRODUCER, attributes=attributes
    ):
        headers: dict[str, str] = {}
        propagate.inject(headers)
        yield headers


def consuming(
    subject: str, headers: Mapping[str, str] | None, consumer: str | None = None
) -> AbstractContextManager[Any]:
    """A consumer span around handling one event, a child of the context its message
    carries (a new trace if it carries none); ``consumer`` names a durable consumer."""
    if _tracer is None:
        return _NOTHING
    from opentelemetry import propagate
    from opentelemetry.trace import SpanKind

    headers = headers or {}
    attributes = _messaging(subject, "process", headers.get("Nats-Msg-Id"))
    if consumer is not None:
        attributes["messaging.consumer.group.name"] = consumer
    return _tracer.start_as_current_span(
        f"process {subject}", context=propagate.extract(headers), kind=SpanKind.CONSUMER, attributes=attributes
    )


def failed(error: BaseException) -> None:
    """Mark the current span failed (a handler failure that is caught and logged)."""
    if _tracer is None:
        return
    from opentelemetry.trace import Status, StatusCode, get_current_span

    span = get_current_span()
    span.record_exception(error)
    span.set_status(Status(StatusCode.ERROR, type(error).__name__))


def _messaging(subject: str, operation: str, message_id: str | None) -> dict[str, Any]:
    attributes = {
        "messaging.system": "nats",
        "messaging.destination.name": subject,
        "messaging.operation.type": operation,
        "messaging.operation.name": operation,
    }
    if message_id:
        attributes["messaging.message.id"] = message_id
    return attributes
