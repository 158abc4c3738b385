"""OpenTelemetry traces: one checkout is one trace, from the gateway through orders and
catalog, over NATS into the delivery service's consumer; and off unless asked for."""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from harness import (
    CHECKOUT,
    LiveServer,
    eventually,
    free_port,
    isolated_run,
    register,
    services_running,
    stack_settings,
    start_winkit_run,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from pymongo import MongoClient

from winkit.core import tracing
from winkit.core.event_contracts import wire
from winkit.core.outbox import TRACE_CONTEXT
from winkit.core.settings import Settings
from winkit.gateway import envoy
from winkit.launcher import Supervisor, mongodb_child, nats_child


@dataclass(frozen=True)
class Span:
    """What the tests look at in a span, however it was collected."""

    service: str
    name: str
    kind: str  # SERVER, CLIENT, PRODUCER, CONSUMER, INTERNAL
    trace_id: str
    span_id: str
    parent_id: str
    attributes: dict[str, Any]


def ancestors(span: Span, spans: Iterable[Span]) -> list[Span]:
    """The spans above ``span`` in its trace, nearest first, as far as they were collected."""
    by_id = {s.span_id: s for s in spans if s.trace_id == span.trace_id}
    chain = []
    while span.parent_id in by_id:
        span = by_id[span.parent_id]
        chain.append(span)
    return chain


def one(spans: Iterable[Span], **match: Any) -> Span:
    found = [s for s in spans if all(getattr(s, k) == v for k, v in match.items())]
    assert len(found) == 1, f"{len(found)} spans match {match}: {sorted((s.service, s.name) for s in spans)}"
    return found[0]


def no_secrets(spans: Iterable[Span], *secrets: str) -> bool:
    values = [str(value) for span in spans for value in span.attributes.values()]
    return not any(secret in value for secret in secrets for value in values)


# --- in process, into the SDK's in-memory exporter -------------------------------------


@dataclass
class TracedStack:
    servers: dict[str, LiveServer]
    mongodb_uri: str
    memory: Any  # InMemorySpanExporter

    def client(self, service: str) -> httpx.Client:
        return httpx.Client(base_url=self.servers[service].url, timeout=30)

    def spans(self) -> list[Span]:
        kinds = {"SpanKind.SERVER": "SERVER", "SpanKind.CLIENT": "CLIENT", "SpanKind.PRODUCER": "PRODUCER"}
        kinds |= {"SpanKind.CONSUMER": "CONSUMER", "SpanKind.INTERNAL": "INTERNAL"}
        return [
            Span(
                service=str(s.resource.attributes["service.name"]),
                name=s.name,
                kind=kinds[str(s.kind)],
                trace_id=f"{s.context.trace_id:032x}",
                span_id=f"{s.context.span_id:016x}",
                parent_id=f"{s.parent.span_id:016x}" if s.parent else "",
                attributes=dict(s.attributes or {}),
            )
            for s in self.memory.get_finished_spans()
        ]


@pytest.fixture
def traced_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TracedStack]:
    """The four services in this process, traced into memory, on a database and a bus of
    their own (no other stack's relay or consumer takes their events). Tracing stops with
    them: it instruments httpx for the whole process, this test's own calls included."""
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    workdir = tmp_path_factory.mktemp("traced")
    infrastructure = Supervisor(workdir / "logs")
    mongodb_port, nats_port = free_port(), free_port()
    infrastructure.start_together(
        [mongodb_child(mongodb_port, workdir / "mongodb"), nats_child(nats_port, free_port(), workdir / "nats")]
    )
    mongodb_uri = f"mongodb://127.0.0.1:{mongodb_port}/?directConnection=true&retryWrites=false"
    memory = InMemorySpanExporter()
    with pytest.MonkeyPatch.context() as env:
        env.setenv("OTEL_BSP_SCHEDULE_DELAY", "50")  # spans reach memory within 50 ms
        assert tracing.start("tests", exporter=memory)
        try:
            own_bus = {"nats_url": f"nats://127.0.0.1:{nats_port}"}
            with services_running(lambda urls: stack_settings(workdir, mongodb_uri, urls, **own_bus)) as running:
                yield TracedStack(running[1], mongodb_uri, memory)
        finally:
            asyncio.run(tracing.stop())
            infrastructure.stop_all()


def test_a_checkout_is_one_trace_across_the_services(traced_stack: TracedStack) -> None:
    with traced_stack.client("users") as users:
        shopper = register(users)
    with traced_stack.client("catalog") as catalog:
        product = next(p for p in catalog.get("/products").json() if p["stock"] > 0)
    from opentelemetry import trace
    from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

    trace_id = random.getrandbits(128)
    edge = SpanContext(trace_id, random.getrandbits(64), is_remote=False, trace_flags=TraceFlags(TraceFlags.SAMPLED))
    with traced_stack.client("orders") as orders:
        added = orders.post("/cart/add", json={"product_id": product["id"], "quantity": 1}, headers=shopper.headers)
        assert added.status_code == 200, added.text
        with trace.use_span(NonRecordingSpan(edge)):  # as if the gateway had started the trace
            placed = orders.post("/order/create", json=CHECKOUT, headers=shopper.headers)
    assert placed.status_code == 201, placed.text
    order_id = placed.json()["order_id"]

    def the_trace() -> list[Span]:
        spans = [s for s in traced_stack.spans() if s.trace_id == f"{trace_id:032x}"]
        names = {s.name for s in spans} | {s.attributes.get("messaging.consumer.group.name") for s in spans}
        return spans if {"POST /order/create", "POST /internal/reservations", "delivery-order-created"} <= names else []

    spans = eventually(the_trace, timeout=30, describe=lambda: sorted({s.name for s in traced_stack.spans()}))
    checkout = one(spans, kind="SERVER", name="POST /order/create")
    reservation = one(spans, kind="SERVER", name="POST /internal/reservations")
    assert checkout in ancestors(reservation, spans)  # orders → (httpx) → catalog
    # The delivery service opens the delivery (the catalog consumes the event too).
    consumer = next(s for s in spans if s.attributes.get("messaging.consumer.group.name") == "delivery-order-created")
    assert (consumer.kind, consumer.name) == ("CONSUMER", "process winkit.order.created")
    chain = ancestors(consumer, spans)
    send = chain[0]
    assert (send.kind, send.name) == ("PRODUCER", "send winkit.order.created")  # the outbox relay
    assert checkout in chain
    # pymongo's async client is traced, inside requests and inside event handlers alike.
    database = [s for s in spans if s.attributes.get("db.system") == "mongodb"]
    assert any(checkout in ancestors(s, spans) for s in database)
    assert any(consumer in ancestors(s, spans) for s in database)
    # No token, no personal data, no document in any span.
    assert no_secrets(spans, shopper.token, shopper.email, CHECKOUT["address"]["line1"])

    # The outbox keeps the context beside the event; the event itself is unchanged.
    with MongoClient(traced_stack.mongodb_uri) as mongo:
        kept = mongo["winkit_orders"]["outbox"].find_one({"type": "order.created", "data.order_id": order_id})
    assert kept is not None
    assert kept[TRACE_CONTEXT]["traceparent"].startswith(f"00-{trace_id:032x}-")
    assert set(json.loads(wire(kept))) == {"id", "type", "version", "source", "occurred_at", "data"}


# --- the real system, over real sockets, into an OTLP/HTTP receiver ---------------------


class OtlpReceiver:
    """A tiny OTLP/HTTP trace receiver (POST /v1/traces, protobuf) keeping every span."""

    def __init__(self) -> None:
        self.spans: list[Span] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.body()
                if self.path == "/v1/traces":
                    receiver.take(ExportTraceServiceRequest.FromString(body))
                answer = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200 if self.path == "/v1/traces" else 404)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def body(self) -> bytes:
                if "chunked" not in self.headers.get("Transfer-Encoding", ""):
                    return self.rfile.read(int(self.headers.get("Content-Length", 0)))
                body = b""  # Envoy's exporter sends its body in chunks
                while size := int(self.rfile.readline().split(b";")[0], 16):
                    body += self.rfile.read(size)
                    self.rfile.readline()
                self.rfile.readline()
                return body

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def take(self, request: ExportTraceServiceRequest) -> None:
        kinds = {1: "INTERNAL", 2: "SERVER", 3: "CLIENT", 4: "PRODUCER", 5: "CONSUMER"}
        received = []
        for resource_spans in request.resource_spans:
            resource = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    received.append(
                        Span(
                            service=resource.get("service.name", ""),
                            name=span.name,
                            kind=kinds.get(span.kind, "UNSPECIFIED"),
                            trace_id=span.trace_id.hex(),
                            span_id=span.span_id.hex(),
                            parent_id=span.parent_span_id.hex(),
                            attributes={a.key: _value(a.value) for a in span.attributes},
                        )
                    )
        with self._lock:
            self.spans.extend(received)

    def collected(self) -> list[Span]:
        with self._lock:
            return list(self.spans)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _value(value: Any) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return tuple(_value(each) for each in value.array_value.values)
    return getattr(value, kind) if kind in ("string_value", "int_value", "bool_value", "double_value") else str(value)


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    started = OtlpReceiver()
    yield started
    started.close()


def without_otel(environ: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in environ.items() if not k.startswith("OTEL_")}


def test_winkit_run_traces_a_checkout_from_envoy_to_the_delivery_consumer(tmp_path: Path, receiver) -> None:
    ports, env = isolated_run(tmp_path / "var")
    env = {**without_otel(env), "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url, "OTEL_BSP_SCHEDULE_DELAY": "200"}
    process = start_winkit_run(env)
    try:
        gateway = f"http://127.0.0.1:{ports['gateway']}"
        with httpx.Client(base_url=f"{gateway}/api/users", timeout=30) as users:
            shopper = register(users)
        api = httpx.Client(base_url=f"{gateway}/api", timeout=30, headers=shopper.headers)
        product = next(p for p in api.get("/catalog/products").json() if p["stock"] > 0)
        assert api.post("/orders/cart/add", json={"product_id": product["id"], "quantity": 1}).status_code == 200
        request_id = str(uuid.uuid4())
        placed = api.post("/orders/order/create", json=CHECKOUT, headers={"X-Request-ID": request_id})
        assert placed.status_code == 201, placed.text
        assert placed.headers["x-request-id"] == request_id  # Envoy's tracing leaves request ids as sent

        def the_trace() -> list[Span]:
            spans = receiver.collected()
            checkout = [s for s in spans if s.service == "winkit-orders" and s.name == "POST /order/create"]
            if not checkout:
                return []
            spans = [s for s in spans if s.trace_id == checkout[0].trace_id]
            present = {s.service for s in spans}
            names = {s.name for s in spans}
            complete = {"winkit-gateway", "winkit-orders", "winkit-catalog", "winkit-delivery"} <= present
            return spans if complete and "process winkit.order.created" in names else []

        spans = eventually(
            the_trace, timeout=60, describe=lambda: sorted({(s.service, s.name) for s in receiver.collected()})
        )
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=60)

    checkout = one(spans, service="winkit-orders", kind="SERVER", name="POST /order/create")
    edge = one(spans, service="winkit-gateway")
    assert (edge.name, edge.kind, edge.parent_id) == ("/api/orders/*", "SERVER", "")  # the gateway is the root
    assert ancestors(checkout, spans) == [edge]
    # Each span names the request id its log lines carry.
    assert edge.attributes["guid:x-request-id"] == request_id
    assert checkout.attributes["http.request.header.x_request_id"] == (request_id,)
    reservation = one(spans, service="winkit-catalog", kind="SERVER", name="POST /internal/reservations")
    assert ancestors(reservation, spans)[-2:] == [checkout, edge]
    consumer = one(spans, service="winkit-delivery", kind="CONSUMER", name="process winkit.order.created")
    chain = ancestors(consumer, spans)
    assert [(s.service, s.kind) for s in chain[:1]] == [("winkit-orders", "PRODUCER")]  # the relay's send
    assert chain[-2:] == [checkout, edge]
    assert no_secrets(spans, shopper.token, shopper.email)


# --- off by default ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("environ", "on"),
    [
        ({}, False),
        ({"OTEL_SERVICE_NAME": "x", "OTEL_TRACES_SAMPLER": "always_on"}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, True),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"}, True),
        ({"OTEL_TRACES_EXPORTER": "console"}, True),
        ({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, False),
        ({"OTEL_SDK_DISABLED": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, False),
    ],
)
def test_only_the_standard_variables_turn_traces_on(environ: dict[str, str], on: bool) -> None:
    assert tracing.wanted(environ) is on


def test_off_by_default_nothing_of_opentelemetry_is_loaded(tmp_path: Path) -> None:
    """A service built with no OTEL_* set installs no tracer provider, is not instrumented
    and has not imported OpenTelemetry's SDK, exporter or instrumentations (FastAPI itself
    imports the API, which costs nothing unconfigured); its events carry no trace context."""
    script = (
        "import sys\n"
        "from winkit.orders.app import create_app\n"
        "from winkit.core import tracing\n"
        "from winkit.core.event_contracts import OrderCancelled\n"
        "from winkit.core.outbox import new_event\n"
        "from winkit.core.settings import Settings\n"
        f"app = create_app(Settings(env='dev', data_dir={str(tmp_path)!r}))\n"
        "event = new_event(OrderCancelled(order_id='x', user_id='u', by='customer'), 'orders')\n"
        "print(tracing._provider, getattr(app, '_is_instrumented_by_opentelemetry', False), sorted(event),\n"
        "      [m for m in sys.modules if m.startswith(('opentelemetry.sdk', 'opentelemetry.instrumentation',\n"
        "                                               'opentelemetry.exporter'))])\n"
    )
    env = without_otel(os.environ.copy())
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    fields = "['_id', 'created_at', 'data', 'occurred_at', 'pending', 'published_at', 'source', 'type', 'version']"
    assert result.stdout.strip().splitlines()[-1] == f"None False {fields} []"


def edge_manager(config: dict[str, Any]) -> dict[str, Any]:
    edge = next(listener for listener in config["static_resources"]["listeners"] if listener["name"] == "edge")
    return edge["filter_chains"][0]["filters"][0]["typed_config"]


def test_envoy_has_no_tracer_unless_traces_are_on(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [name for name in os.environ if name.startswith("OTEL_")]:
        monkeypatch.delenv(name)
    config = envoy.config(Settings())
    assert "tracing" not in edge_manager(config)
    assert envoy.TRACES_CLUSTER not in {c["name"] for c in config["static_resources"]["clusters"]}
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318")
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    assert "tracing" not in edge_manager(envoy.config(Settings()))


def test_envoy_exports_its_spans_where_the_services_do(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in [name for name in os.environ if name.startswith("OTEL_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://otel-collector:4318/")
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "parentbased_traceidratio")
    monkeypatch.setenv("OTEL_TRACES_SAMPLER_ARG", "0.25")
    config = envoy.config(Settings())
    tracer = edge_manager(config)["tracing"]
    assert tracer["random_sampling"] == {"value": 25.0}
    otel = tracer["provider"]["typed_config"]
    assert otel["service_name"] == "winkit-gateway"
    assert otel["http_service"]["http_uri"]["uri"] == "http://otel-collector:4318/v1/traces"
    collector = next(c for c in config["static_resources"]["clusters"] if c["name"] == envoy.TRACES_CLUSTER)
    address = collector["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]
    assert address["socket_address"] == {"address": "otel-collector", "port_value": 4318}
    path = tmp_path / "envoy.json"
    path.write_text(json.dumps(config))
    envoy.validate(path)
