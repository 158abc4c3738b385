"""Runs Winkit services for tests: real uvicorn servers on real sockets, in threads."""

from __future__ import annotations

import os
import queue
import random
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from winkit.app.client import EventStreamParser
from winkit.core.settings import SERVICE_NAMES, Settings
from winkit.launcher import Supervisor, envoy_child


def bound_socket() -> socket.socket:
    """A listening-ready socket on a free loopback port (no race between pick and bind)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


# Ports for processes that bind them by number some time after they are picked (a
# `winkit run`, SecantusDB, nats-server, Envoy): below the kernel's ephemeral range, so no
# outgoing connection of the suite can be holding one by then, and never handed out twice.
_FIXED_PORTS = range(20_000, 32_000)
_HANDED_OUT: set[int] = set()


def free_port() -> int:
    for _ in range(1000):
        port = random.choice(_FIXED_PORTS)
        if port in _HANDED_OUT:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        _HANDED_OUT.add(port)
        return port
    raise RuntimeError("no free port below the ephemeral range")


class LiveServer:
    def __init__(self, app: Any, sock: socket.socket, **options: Any) -> None:
        self.app = app
        self.sock = sock
        self.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        # Open event streams would hold shutdown forever: give them a few seconds.
        config = uvicorn.Config(
            app, log_level="warning", access_log=False, lifespan="on", timeout_graceful_shutdown=3, **options
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [sock]}, daemon=True)

    def start(self, timeout: float = 60.0) -> None:
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"server for {getattr(self.app, 'title', self.app)} did not start")
            time.sleep(0.05)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)


@contextmanager
def services_running(
    settings_for: Callable[[dict[str, str]], Settings],
) -> Iterator[tuple[Settings, dict[str, LiveServer]]]:
    """The four services in this process, each on a socket of its own, with the settings
    ``settings_for`` gives for their URLs; stopped again, last first, on the way out."""
    from winkit.catalog.app import create_app as catalog_app
    from winkit.delivery.app import create_app as delivery_app
    from winkit.orders.app import create_app as orders_app
    from winkit.users.app import create_app as users_app

    factories = {"users": users_app, "catalog": catalog_app, "orders": orders_app, "delivery": delivery_app}
    sockets = {name: bound_socket() for name in SERVICE_NAMES}
    settings = settings_for({name: f"http://127.0.0.1:{s.getsockname()[1]}" for name, s in sockets.items()})
    servers: dict[str, LiveServer] = {}
    try:
        for name in SERVICE_NAMES:
            servers[name] = LiveServer(factories[name](settings), sockets[name])
            servers[name].start()
        yield settings, servers
    finally:
        for server in reversed(servers.values()):
            server.stop()


def stack_settings(workdir: Path, mongodb_uri: str, urls: dict[str, str], **overrides: object) -> Settings:
    return Settings(
        env="dev",
        data_dir=workdir / "data",
        mongodb_uri=mongodb_uri,
        log_level="WARNING",
        **{f"{name}_url": url for name, url in urls.items()},
        **overrides,
    )


class Gateway:
    """The public gateway as `winkit run` starts it: Envoy, with the gateway's pages (an
    in-process server) behind it, on ports of its own."""

    def __init__(self, settings: Settings, workdir: Path, services: Iterable[str] | None = None) -> None:
        from winkit.gateway.app import create_app

        ports = {"gateway_admin_port": free_port(), "gateway_metrics_port": free_port()}
        self.settings = settings.model_copy(update=ports)
        self.url = f"http://127.0.0.1:{self.settings.gateway_port}"
        self.metrics_url = f"http://127.0.0.1:{self.settings.gateway_metrics_port}/metrics"
        pages = create_app(self.settings) if services is None else create_app(self.settings, services=services)
        self.pages = LiveServer(pages, bound_socket())
        self._config_dir = workdir / f"envoy-{uuid.uuid4().hex[:8]}"
        self._supervisor = Supervisor(workdir / "logs")

    def start(self) -> None:
        self.pages.start()
        self._supervisor.start(envoy_child(self.settings, self._config_dir, self.pages.url), timeout=60)

    def stop(self) -> None:
        self._supervisor.stop_all()
        self.pages.stop()


WINKIT = Path(sys.executable).parent / "winkit"
RUN_PORTS = (
    *SERVICE_NAMES,
    "gateway",
    "gateway_app",
    "gateway_admin",
    "gateway_metrics",
    "app",
    "mongodb",
    "nats",
    "nats_monitor",
)


def isolated_run(data_dir: Path) -> tuple[dict[str, int], dict[str, str]]:
    """Ports and an environment for a `winkit run` of its own: its data dir, every port
    free, nothing from the caller's WINKIT_* settings."""
    ports = {name: free_port() for name in RUN_PORTS}
    variables = {
        "WINKIT_DATA_DIR": str(data_dir),
        "WINKIT_EMBEDDED_MONGODB_PORT": str(ports["mongodb"]),
        "WINKIT_EMBEDDED_NATS_PORT": str(ports["nats"]),
        "WINKIT_EMBEDDED_NATS_MONITOR_PORT": str(ports["nats_monitor"]),
        **{
            f"WINKIT_{name.upper()}_PORT": str(ports[name]) for name in RUN_PORTS if name.startswith(("gateway", "app"))
        },
        **{f"WINKIT_{name.upper()}_URL": f"http://127.0.0.1:{ports[name]}" for name in SERVICE_NAMES},
    }
    clean = {k: v for k, v in os.environ.items() if not k.startswith("WINKIT_")}
    return ports, {**clean, **variables}


def start_winkit_run(env: dict[str, str], timeout: float = 120) -> subprocess.Popen[str]:
    """`winkit run`, once it says it is up; its output is read in a thread, so the time
    limit holds even while it prints nothing."""
    process = subprocess.Popen(
        [str(WINKIT), "run"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    lines: queue.Queue[str | None] = queue.Queue()

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=read, daemon=True).start()
    deadline = time.monotonic() + timeout
    said: list[str] = []
    try:
        while (line := lines.get(timeout=max(deadline - time.monotonic(), 0.01))) is not None:
            if "is up" in line:
                return process
            said.append(line)
    except queue.Empty:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=60)
        raise AssertionError(f"winkit run was not up within {timeout:.0f} s:\n{''.join(said)}") from None
    raise AssertionError(f"winkit run ended early with {process.wait()}:\n{''.join(said)}")


@dataclass
class Customer:
    user_id: str
    email: str
    password: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def unique_email(tag: str = "shopper") -> str:
    return f"{tag}-{uuid.uuid4().hex[:10]}@example.com"


def latest_code(users: httpx.Client, email: str) -> str:
    messages = users.get("/dev/outbox", params={"to": email}).json()
    body = messages[0]["body"]
    return next(word.rstrip(".") for word in body.split() if word.rstrip(".").isdigit())


def register(users: httpx.Client, email: str | None = None, **extra: Any) -> Customer:
    email = email or unique_email()
    password = "correct horse battery"
    assert users.post("/otp/send", json={"email": email}).status_code == 202
    body = {"name": "Asha Shopper", "email": email, "password": password, "otp": latest_code(users, email)}
    created = users.post("/register", json={**body, **extra})
    assert created.status_code == 201, created.text
    return Customer(created.json()["id"], email, password, login(users, email, password))


def login(users: httpx.Client, email: str, password: str) -> str:
    response = users.post("/login", json={"email": email, "password": password})
    assert response.status_code == 200, response.text
    return response.json()["access_token"]


ADDRESS = {
    "name": "Asha Shopper",
    "phone": "98765 43210",
    "line1": "12 MG Road",
    "landmark": "Opposite the metro station",
    "city": "Bengaluru",
    "pincode": "560001",
}
# The body of a checkout to a new address.
CHECKOUT = {"address": ADDRESS}


def eventually(check: Any, timeout: float = 15.0, interval: float = 0.1, describe: Any = None) -> Any:
    """Poll ``check`` until it returns something truthy (events are asynchronous); on
    timeout, ``describe()`` (if given) says what was still wrong."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            state = describe() if describe is not None else result
            raise AssertionError(f"condition not met within {timeout} s (last: {state!r})")
        time.sleep(interval)


def new_product(catalog: httpx.Client, staff: dict[str, str], *, stock: int, price: float = 50.0) -> dict:
    body = {
        "name": f"Test item {uuid.uuid4().hex[:8]}",
        "category": "Test Shelf",
        "price": price,
        "unit": "1 pc",
        "stock": stock,
    }
    response = catalog.post("/products", json=body, headers=staff)
    assert response.status_code == 201, response.text
    return response.json()


def server_sent_events(response: httpx.Response) -> Iterator[tuple[str, Any]]:
    """(event, JSON data) for each event of a text/event-stream; ("comment", text) for a
    heartbeat. Reading blocks until the server sends: use a client with a read timeout."""
    parser = EventStreamParser()
    for line in response.iter_lines():
        if (event := parser.feed(line)) is not None:
            yield event


def next_event(events: Iterator[tuple[str, Any]], skip: str = "comment") -> tuple[str, Any]:
    """The next event that is not a heartbeat."""
    return next(e for e in events if e[0] != skip)


def assert_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    """An RFC 9457 problem with this status, as every error answers; its body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["title"]
    assert body["type"]
    return body
