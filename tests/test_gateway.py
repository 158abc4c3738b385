"""The API gateway — Envoy, with its pages behind it — on real sockets, in front of the
real services of the test stack."""

from __future__ import annotations

import gzip
import json
import re
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from ipaddress import ip_network
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from harness import (
    CHECKOUT,
    Gateway,
    LiveServer,
    assert_problem,
    bound_socket,
    eventually,
    free_port,
    new_product,
    next_event,
    register,
    server_sent_events,
    unique_email,
)

from winkit.core.settings import SERVICE_NAMES

ALLOWED_ORIGIN = "http://localhost:8080"


class Gateways:
    """Gateways in front of the stack, each with settings of its own, all stopped when the
    module ends."""

    def __init__(self, stack: Any) -> None:
        self.stack = stack
        self.services = [name for name in SERVICE_NAMES if name in stack.servers]
        self._started: list[Gateway] = []
        self._clients: list[httpx.Client] = []

    def start(self, **overrides: Any) -> httpx.Client:
        settings = self.stack.settings.model_copy(update={"gateway_port": free_port(), **overrides})
        gateway = Gateway(settings, self.stack.workdir, self.services)
        self._started.append(gateway)
        gateway.start()
        client = httpx.Client(base_url=gateway.url, timeout=30)
        self._clients.append(client)
        return client

    def metrics_url(self, client: httpx.Client) -> str:
        return next(g.metrics_url for g in self._started if g.url == root(client))

    def stop_all(self) -> None:
        for client in self._clients:
            client.close()
        for gateway in self._started:
            gateway.stop()


@pytest.fixture(scope="module")
def gateways(stack: Any) -> Iterator[Gateways]:
    started = Gateways(stack)
    yield started
    started.stop_all()


@pytest.fixture(scope="module")
def gateway(gateways: Gateways) -> httpx.Client:
    """The gateway as configured for the stack (default limits)."""
    return gateways.start()


@pytest.fixture(scope="module")
def strict(gateways: Gateways) -> httpx.Client:
    """Tiny limits and body cap. Its tests each come from their own client IPs (X-Forwarded-For
    is believed from loopback, a trusted proxy by default), so they do not share counters.
    Hourly buckets: none refills during a test."""
    return gateways.start(
        gateway_auth_rate_limit="3/hour",
        gateway_default_rate_limit="5/hour",
        gateway_max_body_bytes=1024,
    )


def root(client: httpx.Client) -> str:
    return str(client.base_url).rstrip("/")


def require(stack: Any, service: str) -> None:
    if service not in stack.servers:
        pytest.skip(f"the {service} service is not in the test stack yet")


def from_ip(ip: str, **headers: str) -> dict[str, str]:
    return {"X-Forwarded-For": ip, **headers}


def assert_edge_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    """A problem the gateway answered itself: services name their own path as the instance
    (``/profile``), the gateway the public one (``/api/users/profile``)."""
    body = assert_problem(response, status)
    assert body["instance"] == response.request.url.path
    assert body["instance"].startswith("/api/")
    return body


def forged_token(stack: Any) -> str:
    """Well-formed, naming the real key id, but signed with another key."""
    kid = httpx.get(f"{stack.servers['users'].url}/.well-known/jwks.json").json()["keys"][0]["kid"]
    now = int(time.time())
    claims = {
        "sub": "intruder",
        "role": "admin",
        "iss": stack.settings.jwt_issuer,
        "aud": stack.settings.jwt_audience,
        "iat": now,
        "exp": now + 600,
    }
    return jwt.encode(claims, Ed25519PrivateKey.generate(), algorithm="EdDSA", headers={"kid": kid})


def raw_get_status(base_url: str, target: str) -> int:
    """GET a request target byte for byte (httpx would resolve ``..`` before sending)."""
    url = httpx.URL(base_url)
    with socket.create_connection((url.host, url.port), timeout=10) as conn:
        conn.sendall(f"GET {target} HTTP/1.1\r\nHost: {url.netloc.decode()}\r\nConnection: close\r\n\r\n".encode())
        reply = b""
        while chunk := conn.recv(65536):
            reply += chunk
    return int(reply.split(b" ", 2)[1])


class RecordingUpstream:
    """A raw HTTP/1.1 server on loopback that records each request head and always gives the
    same answer: it shows exactly what the gateway puts on the wire, both ways."""

    def __init__(self, response: bytes) -> None:
        self.response = response
        self.heads: list[bytes] = []
        self.sock = bound_socket()
        self.sock.listen()
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            buffer = b""
            while True:  # keep-alive: one answer per request head (GETs, no bodies)
                while b"\r\n\r\n" not in buffer:
                    data = conn.recv(65536)
                    if not data:
                        return
                    buffer += data
                head, _, buffer = buffer.partition(b"\r\n\r\n")
                self.heads.append(head)
                conn.sendall(self.response)

    def last_request(self) -> tuple[str, dict[str, list[str]]]:
        request_line, *lines = self.heads[-1].decode("latin-1").split("\r\n")
        headers: dict[str, list[str]] = {}
        for line in lines:
            name, _, value = line.partition(":")
            headers.setdefault(name.strip().lower(), []).append(value.strip())
        return request_line, headers

    def close(self) -> None:
        self.sock.close()


# --- routing -------------------------------------------------------------------------


@pytest.mark.parametrize("service", SERVICE_NAMES)
def test_each_prefix_reaches_its_service(gateway, stack, service):
    require(stack, service)
    response = gateway.get(f"/api/{service}/")
    assert response.status_code == 200
    assert response.json()["service"] == service


def test_query_string_is_kept(gateway, catalog):
    params = {"limit": 3, "offset": 2}
    through = gateway.get("/api/catalog/products", params=params)
    assert through.status_code == 200
    assert [p["id"] for p in through.json()] == [p["id"] for p in catalog.get("/products", params=params).json()]


def test_image_urls_point_at_the_public_api(gateway, stack):
    public = stack.settings.effective_public_api_url
    [product] = gateway.get("/api/catalog/products", params={"limit": 1}).json()
    assert product["image_url"] == f"{public}/catalog/products/{product['id']}/image.svg"
    image = gateway.get(product["image_url"].removeprefix(public).join(("/api", "")))
    assert image.status_code == 200
    assert image.headers["content-type"].startswith("image/svg+xml")
    category = gateway.get("/api/catalog/categories").json()[0]
    assert category["image_url"].startswith(f"{public}/catalog/categories/")
    assert gateway.get("/api" + category["image_url"].removeprefix(public)).status_code == 200


def test_no_redirect_names_the_host_a_client_sent(gateway):
    for path in ("/health/", "/api/catalog/products/", "/docs/"):
        answer = gateway.get(path, headers={"Host": "evil.example"})
        assert "evil.example" not in answer.headers.get("location", ""), (path, answer.headers)


def test_cart_route_reaches_the_orders_service(gateway, stack):
    require(stack, "orders")
    shopper = stack.customer()
    [product] = gateway.get("/api/catalog/products", params={"limit": 1}).json()
    added = gateway.post("/api/orders/cart/add", json={"product_id": product["id"]}, headers=shopper.headers)
    assert added.status_code == 200, added.text
    assert [line["product_id"] for line in added.json()["items"]] == [product["id"]]


def test_delivery_route_reaches_the_delivery_service(gateway, stack):
    require(stack, "delivery")
    order_id = uuid.uuid4().hex[:24]
    answer = gateway.get(f"/api/delivery/order/{order_id}/status", headers=stack.customer().headers)
    # The delivery service's own 404, naming its own path: the request got there.
    assert assert_problem(answer, 404)["instance"] == f"/order/{order_id}/status"


def test_internal_routes_are_not_exposed(gateway):
    for method in ("GET", "POST"):
        response = gateway.request(method, "/api/catalog/internal/reservations", json={})
        assert_edge_problem(response, 404)
    # Escaped, dotted and doubled spellings of the same path do not slip through either.
    for target in (
        "/api/catalog/%69nternal/reservations",
        "/api/catalog/x/../internal/reservations",
        "/api/catalog//internal/reservations",
    ):
        assert raw_get_status(root(gateway), target) == 404, target


def test_service_metrics_stay_inside(gateway):
    for service in ("users", "catalog", "orders", "delivery"):
        assert_edge_problem(gateway.get(f"/api/{service}/metrics"), 404)
    assert_problem(gateway.get("/metrics"), 404)  # Envoy's own are on the metrics port only


def test_an_escaped_slash_is_refused_not_an_error(gateway):
    for path in ("/api/catalog%2fproducts", "/api/catalog/products%2F1", "/api%2Fcatalog/products"):
        response = gateway.get(path)
        assert 400 <= response.status_code < 500, path
        assert response.headers["content-type"] == "application/problem+json"


def test_unknown_prefix_is_a_404_problem(gateway):
    assert_problem(gateway.get("/api/payments/charges"), 404)
    assert_problem(gateway.get("/nothing-here"), 404)


# --- tokens at the edge --------------------------------------------------------------


def test_protected_routes_need_a_token_at_the_edge(gateway, stack):
    for method, path in [("GET", "/api/users/profile"), ("POST", "/api/catalog/products")]:
        response = gateway.request(method, path, json={})
        assert_edge_problem(response, 401)
        assert response.headers["www-authenticate"].startswith("Bearer")
    for service in ("orders", "delivery"):
        if service in stack.servers:
            assert_edge_problem(gateway.get(f"/api/{service}/orders"), 401)
            assert gateway.get(f"/api/{service}/health").status_code == 200


def test_public_routes_need_no_token(gateway):
    assert gateway.get("/api/catalog/products", params={"limit": 1}).status_code == 200
    assert gateway.get("/api/users/.well-known/jwks.json").json()["keys"]


def test_a_stale_or_broken_token_is_anonymous_on_public_routes_only(gateway, stack):
    for authorization in (f"Bearer {forged_token(stack)}", "Bearer not-a-jwt", "Basic dXNlcjpwYXNz"):
        headers = {"Authorization": authorization}
        assert gateway.get("/api/catalog/products", params={"limit": 1}, headers=headers).status_code == 200
        assert gateway.get("/api/catalog/categories", headers=headers).status_code == 200
        assert_edge_problem(gateway.get("/api/users/profile", headers=headers), 401)
        assert_edge_problem(gateway.post("/api/catalog/products", json={}, headers=headers), 401)


def test_a_valid_token_passes_and_services_still_check_roles(gateway, stack):
    shopper = stack.customer()
    profile = gateway.get("/api/users/profile", headers=shopper.headers)
    assert profile.status_code == 200
    assert profile.json()["email"] == shopper.email
    refused = gateway.post("/api/catalog/products", json={}, headers=shopper.headers)
    assert assert_problem(refused, 403)["instance"] == "/products"  # the catalog's own answer


# --- rate limits ---------------------------------------------------------------------


def assert_rate_limited(response: httpx.Response) -> None:
    body = assert_edge_problem(response, 429)
    assert body["type"].endswith("/too-many-requests")
    assert 1 <= int(response.headers["retry-after"]) <= 3600


def test_sign_in_routes_are_limited_per_ip(strict):
    headers = from_ip("10.0.1.1")
    for _ in range(3):
        attempt = strict.post("/api/users/login", json={"email": unique_email(), "password": "x" * 12}, headers=headers)
        assert attempt.status_code == 401  # the user service's answer
    assert_rate_limited(
        strict.post("/api/users/login", json={"email": unique_email(), "password": "y"}, headers=headers)
    )
    # Other routes from that IP still have their generous allowance.
    assert strict.get("/api/catalog/products", params={"limit": 1}, headers=headers).status_code == 200


def test_other_routes_are_limited_per_ip(strict):
    headers = from_ip("10.0.3.1")
    for _ in range(5):
        assert strict.get("/api/catalog/products", params={"limit": 1}, headers=headers).status_code == 200
    assert_rate_limited(strict.get("/api/catalog/products", params={"limit": 1}, headers=headers))
    assert strict.get("/api/catalog/products", params={"limit": 1}, headers=from_ip("10.0.3.2")).status_code == 200


def test_other_routes_are_limited_per_user_across_ips(strict, stack):
    shopper = stack.customer()
    for n in range(5):
        response = strict.get("/api/users/profile", headers=from_ip(f"10.0.4.{n}", **shopper.headers))
        assert response.status_code == 200
    assert_rate_limited(strict.get("/api/users/profile", headers=from_ip("10.0.4.9", **shopper.headers)))


def test_a_forwarded_for_header_from_an_untrusted_peer_is_no_way_around_the_limit(gateways):
    """Only a trusted proxy may name the client: from anywhere else, X-Forwarded-For is
    ignored, and rotating it does not reset the per-IP count."""
    wary = gateways.start(gateway_default_rate_limit="3/hour", gateway_trusted_proxies=[ip_network("10.255.0.0/16")])
    for n in range(3):
        assert wary.get("/api/catalog/categories", headers=from_ip(f"10.0.11.{n}")).status_code == 200
    assert_rate_limited(wary.get("/api/catalog/categories", headers=from_ip("10.0.11.9")))


# --- body cap ------------------------------------------------------------------------


def test_a_body_over_the_cap_is_refused_by_content_length(strict):
    response = strict.post(
        "/api/users/register",
        content=b"x" * 2000,
        headers=from_ip("10.0.5.1", **{"Content-Type": "application/json"}),
    )
    assert_edge_problem(response, 413)


def test_a_chunked_body_is_cut_off_once_over_the_cap(strict):
    chunks = iter([b" " * 512] * 4)  # no length up front: Transfer-Encoding: chunked
    response = strict.post(
        "/api/users/register",
        content=chunks,
        headers=from_ip("10.0.5.2", **{"Content-Type": "application/json"}),
    )
    assert response.request.headers["transfer-encoding"] == "chunked"
    assert_edge_problem(response, 413)


def test_a_body_under_the_cap_is_passed_on(strict):
    response = strict.post("/api/users/register", content=iter([b"{", b"}"]), headers=from_ip("10.0.5.3"))
    assert assert_problem(response, 422)["type"].endswith("/validation")  # the service read it


# --- slow clients --------------------------------------------------------------------

SLOW_CLIENTS = 520


def test_slow_clients_cannot_starve_others(gateways):
    """Hundreds of connections from one IP send their headers, then trickle a body that
    never ends. Envoy reads bodies whole at the edge before a service sees them, so the
    trickles hold Envoy's cheap connections, not the services' workers: everyone else is
    still answered, and each trickle is cut off with a 408 once its time is up."""
    # Generous request limits: this is about slow bodies, not many requests.
    edge = gateways.start(
        gateway_request_timeout=4, gateway_auth_rate_limit="10000/minute", gateway_default_rate_limit="10000/minute"
    )
    url = httpx.URL(root(edge))
    head = (
        b"POST /api/users/register HTTP/1.1\r\nHost: shop\r\nContent-Type: application/json\r\n"
        b"Content-Length: 100000\r\n\r\n{"
    )

    def others_answered() -> float:
        """Median seconds for a catalog read and a sign-in attempt, each answered by its service."""
        timings = []
        for _ in range(5):
            started = time.perf_counter()
            assert edge.get("/api/catalog/products", params={"limit": 1}).status_code == 200
            assert edge.post("/api/users/login", json={"email": unique_email(), "password": "wrong"}).status_code == 401
            timings.append(time.perf_counter() - started)
        return sorted(timings)[len(timings) // 2]

    unloaded = others_answered()
    trickles = []
    try:
        for _ in range(SLOW_CLIENTS):
            conn = socket.create_connection((url.host, url.port), timeout=30)
            conn.sendall(head)
            trickles.append(conn)
        for conn in trickles[::10]:
            conn.sendall(b" ")  # still trickling
        loaded = others_answered()
        print(f"others answered in {unloaded * 1000:.0f} ms, {loaded * 1000:.0f} ms with {SLOW_CLIENTS} trickles held")
        # Time is up for the trickles: each gets a 408 problem, then its connection closes.
        for conn in trickles:
            reply = b""
            while chunk := conn.recv(65536):
                reply += chunk
            assert reply.startswith(b"HTTP/1.1 408"), reply[:100]
            assert b"application/problem+json" in reply
    finally:
        for conn in trickles:
            conn.close()


# --- CORS ----------------------------------------------------------------------------


def test_cors_preflight_is_answered_at_the_gateway(gateway):
    preflight = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization"}
    allowed = gateway.options("/api/users/profile", headers={"Origin": ALLOWED_ORIGIN, **preflight})
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == ALLOWED_ORIGIN
    assert "POST" in allowed.headers["access-control-allow-methods"]
    refused = gateway.options("/api/users/profile", headers={"Origin": "https://evil.example", **preflight})
    assert refused.status_code == 400
    assert "access-control-allow-origin" not in refused.headers


def test_cors_headers_only_for_allowed_origins(gateway):
    allowed = gateway.get("/api/catalog/categories", headers={"Origin": ALLOWED_ORIGIN})
    assert allowed.headers.get_list("access-control-allow-origin") == [ALLOWED_ORIGIN]
    assert "x-request-id" in allowed.headers["access-control-expose-headers"].lower()
    refused = gateway.get("/api/catalog/categories", headers={"Origin": "https://evil.example"})
    assert refused.status_code == 200
    assert "access-control-allow-origin" not in refused.headers


# --- upstream failures ---------------------------------------------------------------


def test_a_service_that_refuses_connections_is_a_503_naming_it(gateways):
    refusing = bound_socket()  # bound, never listening: connections are refused
    try:
        broken = gateways.start(catalog_url=f"http://127.0.0.1:{refusing.getsockname()[1]}")
        body = assert_edge_problem(broken.get("/api/catalog/products"), 503)
        assert body["service"] == "catalog"
        assert "catalog" in body["detail"]
        health = assert_problem(broken.get("/health"), 503)
        assert health["down"] == ["catalog"]
        assert health["services"]["catalog"] == "down"
        assert health["services"]["users"] == "ok"
    finally:
        refusing.close()


def test_a_service_that_never_answers_is_a_504(gateways):
    silent = bound_socket()
    silent.listen()  # the kernel accepts connections; nobody ever reads or answers
    try:
        slow = gateways.start(catalog_url=f"http://127.0.0.1:{silent.getsockname()[1]}", gateway_upstream_timeout=0.5)
        # Without the gateway's own timeout the client's (30 s) would fail first, with no answer.
        body = assert_edge_problem(slow.get("/api/catalog/products"), 504)
        assert body["service"] == "catalog"
    finally:
        silent.close()


# --- request ids, headers, compression -----------------------------------------------


def test_request_id_is_kept_or_issued_and_returned_once(gateway):
    kept = gateway.get("/api/catalog/categories", headers={"X-Request-ID": "gateway-test-42"})
    assert kept.headers.get_list("x-request-id") == ["gateway-test-42"]
    issued = gateway.get("/api/catalog/categories")
    [request_id] = issued.headers.get_list("x-request-id")
    assert uuid.UUID(request_id).version == 4
    # The edge's own answers carry it too, in the header and the problem.
    refused = gateway.get("/api/users/profile", headers={"X-Request-ID": "gateway-test-43"})
    assert refused.headers.get_list("x-request-id") == ["gateway-test-43"]
    assert refused.json()["request_id"] == "gateway-test-43"


def test_what_the_gateway_sends_upstream_and_returns(gateways):
    body = gzip.compress(json.dumps({"numbers": list(range(300))}).encode())
    upstream = RecordingUpstream(
        b"HTTP/1.1 200 OK\r\n"
        b"Content-Type: application/json\r\n"
        b"Content-Encoding: gzip\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\n"
        b"Connection: keep-alive\r\n"
        b"Keep-Alive: timeout=5\r\n"
        b"X-Request-ID: chosen-by-upstream\r\n"
        b"Access-Control-Allow-Origin: *\r\n"
        b"Set-Cookie: upstream-session=1; Path=/\r\n"
        b"X-End-To-End: kept\r\n\r\n" + body
    )
    try:
        probe = gateways.start(catalog_url=upstream.url)
        response = probe.get(
            "/api/catalog/products/a%20b",
            params={"q": "two words"},
            headers={
                "X-Request-ID": "probe-1",
                "Connection": "keep-alive",
                "TE": "trailers",
                "Proxy-Authorization": "Basic c2VjcmV0",
                "X-Forwarded-Prefix": "/elsewhere",
                "Accept-Encoding": "gzip",
            },
        )
        request_line, sent = upstream.last_request()
        # Path escaping and query string as the client wrote them.
        assert request_line == "GET /products/a%20b?q=two+words HTTP/1.1"
        assert sent["host"] == [probe.base_url.netloc.decode()]
        assert sent["x-forwarded-prefix"] == ["/api/catalog"]
        assert sent["x-forwarded-proto"] == ["http"]
        assert sent["x-forwarded-for"] == ["127.0.0.1"]
        assert sent["x-request-id"] == ["probe-1"]  # the same id the client sees
        assert not {"proxy-authorization", "keep-alive"} & set(sent)
        assert not [name for name in sent if name.startswith("x-envoy-")]

        assert response.status_code == 200
        assert response.headers["x-end-to-end"] == "kept"
        assert response.headers.get_list("x-request-id") == ["probe-1"]
        assert not {"keep-alive", "access-control-allow-origin"} & set(response.headers)
        assert not [name for name in response.headers if name.startswith("x-envoy-")]
        # Already compressed upstream: passed through as is, not compressed twice.
        assert response.headers.get_list("content-encoding") == ["gzip"]
        assert response.json() == {"numbers": list(range(300))}
        assert len(response.headers.get_list("date")) == 1
        # Cookies are the client's business: passed on, never replayed upstream by the shared client.
        assert response.headers["set-cookie"].startswith("upstream-session=1")
        probe.cookies.clear()
        probe.get("/api/catalog/products")
        assert "cookie" not in upstream.last_request()[1]
    finally:
        upstream.close()


def test_large_responses_are_gzipped_small_ones_not(gateway):
    products = gateway.get("/api/catalog/products", headers={"Accept-Encoding": "gzip"})
    assert products.headers["content-encoding"] == "gzip"
    assert products.num_bytes_downloaded < len(products.content) / 3
    assert len(products.json()) >= 60
    plain = gateway.get("/api/catalog/products", headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in plain.headers
    assert plain.json() == products.json()
    small = gateway.get("/api/catalog/", headers={"Accept-Encoding": "gzip"})
    assert "content-encoding" not in small.headers


# --- gateway's own routes ------------------------------------------------------------


def test_root_health_and_metrics(gateway, gateways):
    assert gateway.get("/").json()["service"] == "gateway"
    health = gateway.get("/health")
    assert health.status_code == 200
    assert health.json() == {"status": "ok", "services": dict.fromkeys(gateways.services, "ok")}

    def catalog_requests() -> float:
        metrics = httpx.get(gateways.metrics_url(gateway), timeout=10).text
        line = re.search(r'^envoy_cluster_upstream_rq_total\{envoy_cluster_name="catalog"\} (\d+)', metrics, re.M)
        return float(line.group(1)) if line else 0.0

    before = catalog_requests()
    gateway.get("/api/catalog/categories")
    eventually(lambda: catalog_requests() > before)  # Envoy flushes its counters every few seconds


def test_combined_openapi_covers_every_service(gateway, stack):
    document = gateway.get("/openapi.json").json()
    paths = document["paths"]
    assert {"/api/catalog/products", "/api/users/login", "/api/users/profile", "/health"} <= set(paths)
    for service in ("orders", "delivery"):
        if service in stack.servers:
            assert any(path.startswith(f"/api/{service}/") for path in paths)
    assert not [p for p in paths if "/internal" in p or p.endswith(("/api/catalog/health", "/api/users/"))]
    schemas = document["components"]["schemas"]
    assert "catalog.Product" in schemas
    assert "users.TokenResponse" in schemas
    refs = re.findall(r'"\$ref": "#/components/schemas/([^"]+)"', json.dumps(document))
    assert refs
    assert all(ref in schemas for ref in refs)
    operation_ids = [op["operationId"] for item in paths.values() for op in item.values() if "operationId" in op]
    assert len(operation_ids) == len(set(operation_ids))
    [scheme] = document["components"]["securitySchemes"].values()
    assert scheme["flows"]["password"]["tokenUrl"] == "/api/users/login"
    # Swagger UI from the gateway itself, not a CDN: it works offline.
    swagger = gateway.get("/docs")
    assert swagger.status_code == 200
    assert "'openapi.json'" in swagger.text
    assets = re.findall(r'(?:src|href)="([^"]+)"', swagger.text)
    assert assets
    assert not [url for url in assets if url.startswith(("http:", "https:", "//"))]
    for asset in assets:
        assert gateway.get(f"/{asset}").status_code == 200, asset
    assert gateway.get("/api/catalog/docs").status_code == 200  # each service's own, too


def test_openapi_is_fetched_again_once_a_missing_service_is_back(gateways, stack):
    from winkit.users.app import create_app as users_app

    later = bound_socket()  # users is refused at first, then served from this socket
    gateway = gateways.start(users_url=f"http://127.0.0.1:{later.getsockname()[1]}")
    paths = gateway.get("/openapi.json").json()["paths"]
    assert "/api/catalog/products" in paths
    assert "/api/users/login" not in paths
    users = LiveServer(users_app(stack.settings), later)
    users.start()
    try:
        assert "/api/users/login" in gateway.get("/openapi.json").json()["paths"]
        assert gateway.get("/health").status_code == 200
    finally:
        users.stop()


# --- the whole journey ---------------------------------------------------------------


def test_sign_up_and_shop_through_the_gateway(gateway, stack):
    with httpx.Client(base_url=f"{root(gateway)}/api/users", timeout=30) as users:
        # otp/send, the code from dev/outbox?to=, register, login: each through the gateway.
        shopper = register(users, unique_email("gateway"))
    profile = gateway.get("/api/users/profile", headers=shopper.headers)
    assert profile.status_code == 200
    assert profile.json()["email"] == shopper.email
    products = gateway.get("/api/catalog/products", headers=shopper.headers)
    assert products.status_code == 200
    assert products.json()
    if "orders" not in stack.servers or "delivery" not in stack.servers:
        pytest.skip("cart, checkout and delivery need the orders and delivery services")

    product = next(p for p in products.json() if p["stock"] >= 2)
    added = gateway.post(
        "/api/orders/cart/add", json={"product_id": product["id"], "quantity": 2}, headers=shopper.headers
    )
    assert added.status_code == 200
    assert added.json()["items"][0]["quantity"] == 2
    cart = gateway.get("/api/orders/cart", headers=shopper.headers).json()
    placed = gateway.post(
        "/api/orders/order/create", json=CHECKOUT, headers={**shopper.headers, "Idempotency-Key": uuid.uuid4().hex}
    )
    assert placed.status_code == 201
    assert placed.json()["total"] == cart["total"]
    order_id = placed.json()["order_id"]

    status_path = f"/api/delivery/order/{order_id}/status"
    eventually(lambda: gateway.get(status_path, headers=shopper.headers).status_code == 200)
    assert gateway.get(status_path, headers=shopper.headers).json()["status"] == "PLACED"
    staff = stack.staff_headers()
    moved = gateway.post(f"/api/delivery/order/{order_id}/update-status", headers=staff)
    assert moved.status_code == 200
    assert moved.json()["status"] == "CONFIRMED"
    assert gateway.get(status_path, headers=shopper.headers).json()["status"] == "CONFIRMED"

    def history_status() -> str:
        return gateway.get("/api/orders/orders", headers=shopper.headers).json()[0]["status"]

    eventually(lambda: history_status() == "CONFIRMED")


def test_live_tracking_streams_through_unbuffered_and_outlasts_the_upstream_timeout(gateways, stack):
    require(stack, "delivery")
    impatient = gateways.start(gateway_upstream_timeout=0.5)
    shopper, staff = stack.customer(), stack.staff_headers()
    with stack.client("catalog") as catalog, stack.client("orders") as orders:
        product = new_product(catalog, staff, stock=5)
        orders.post("/cart/add", json={"product_id": product["id"]}, headers=shopper.headers)
        order_id = orders.post("/order/create", json=CHECKOUT, headers=shopper.headers).json()["order_id"]
    status_path = f"/api/delivery/order/{order_id}/status"
    eventually(lambda: impatient.get(status_path, headers=shopper.headers).status_code == 200)
    stream_timeout = httpx.Timeout(30.0)  # a bound on waiting, not an expectation of speed
    # As browsers' EventSource does, the client says it wants a stream.
    headers = {**shopper.headers, "Accept": "text/event-stream"}
    with impatient.stream(
        "GET", f"/api/delivery/order/{order_id}/events", headers=headers, timeout=stream_timeout
    ) as stream:
        assert stream.status_code == 200
        assert "content-encoding" not in stream.headers
        events = server_sent_events(stream)
        assert next_event(events)[1]["status"] == "PLACED"
        # Quiet for longer than the gateway waits on an ordinary answer: a stream is not cut.
        time.sleep(1.0)
        impatient.post(f"/api/delivery/order/{order_id}/update-status", headers=staff)
        assert next_event(events)[1]["status"] == "CONFIRMED"
