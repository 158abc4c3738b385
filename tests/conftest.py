"""Session-wide real infrastructure: SecantusDB and the services over HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from harness import (
    Customer,
    Gateway,
    LiveServer,
    bound_socket,
    free_port,
    login,
    register,
    services_running,
    stack_settings,
)

from winkit.core.settings import Settings
from winkit.launcher import Child, Supervisor, mongodb_child, nats_child
from winkit.users.accounts import DEV_STAFF_EMAIL, DEV_STAFF_PASSWORD


@pytest.fixture(scope="session")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("winkit")


@pytest.fixture(scope="session")
def mongodb_uri(workdir: Path) -> Iterator[str]:
    port = free_port()
    supervisor = Supervisor(workdir / "logs")
    supervisor.start(mongodb_child(port, workdir / "mongodb"), timeout=60)
    yield f"mongodb://127.0.0.1:{port}/?directConnection=true&retryWrites=false"
    supervisor.stop_all()


class Nats:
    """A real nats-server that a test may stop and start again (same port, same store)."""

    def __init__(self, workdir: Path) -> None:
        self.port, self.monitor_port = free_port(), free_port()
        self.url = f"nats://127.0.0.1:{self.port}"
        self._store = workdir / "nats"
        self._supervisor = Supervisor(workdir / "logs")

    def child(self) -> Child:
        return nats_child(self.port, self.monitor_port, self._store)

    def start(self) -> None:
        self._supervisor.start(self.child(), timeout=30)

    def stop(self) -> None:
        self._supervisor.stop_all()


@pytest.fixture(scope="session")
def nats_server(workdir: Path) -> Iterator[Nats]:
    server = Nats(workdir)
    server.start()
    yield server
    server.stop()


@dataclass
class Stack:
    settings: Settings
    workdir: Path
    servers: dict[str, LiveServer] = field(default_factory=dict)
    staff_token: str | None = None

    def client(self, service: str) -> httpx.Client:
        return httpx.Client(base_url=self.servers[service].url, timeout=30)

    def customer(self) -> Customer:
        with self.client("users") as users:
            return register(users)

    def staff_headers(self) -> dict[str, str]:
        # One sign-in for the session (a token lasts an hour): signing in for every test
        # would run into the per-email sign-in limit.
        if self.staff_token is None:
            with self.client("users") as users:
                self.staff_token = login(users, DEV_STAFF_EMAIL, DEV_STAFF_PASSWORD)
        return {"Authorization": f"Bearer {self.staff_token}"}


@pytest.fixture(scope="session")
def stack(workdir: Path, mongodb_uri: str, nats_server: Nats) -> Iterator[Stack]:
    # Where the stack's public gateway will listen (AppStack starts it): image links point here.
    gateway_port = free_port()
    public_api_url = f"http://127.0.0.1:{gateway_port}/api"

    def settings_for(urls: dict[str, str]) -> Settings:
        overrides = {"nats_url": nats_server.url, "gateway_port": gateway_port, "public_api_url": public_api_url}
        return stack_settings(workdir, mongodb_uri, urls, **overrides)

    with services_running(settings_for) as (settings, servers):
        yield Stack(settings, workdir, servers)


class AppStack:
    """The gateway and the app server (Flet, on :8080 in ``winkit run``) in front of the stack."""

    def __init__(self, stack: Stack) -> None:
        from winkit.app.app import create_app as app_server

        app_socket = bound_socket()
        self.url = f"http://127.0.0.1:{app_socket.getsockname()[1]}"
        self.api_url = stack.settings.effective_public_api_url
        # Every test signs in from 127.0.0.1: the sign-in limit is tested elsewhere, not here.
        overrides = {"cors_origins": [self.url], "app_api_url": self.api_url, "gateway_auth_rate_limit": "1000/minute"}
        self.settings = stack.settings.model_copy(update=overrides)
        self.gateway = Gateway(self.settings, stack.workdir)
        # Flet's sessions speak sans-io websockets, as `winkit run` starts the app.
        self.app = LiveServer(app_server(self.settings), app_socket, ws="websockets-sansio")
        self.gateway.start()
        self.app.start()

    def stop(self) -> None:
        self.app.stop()
        self.gateway.stop()


@pytest.fixture(scope="module")
def staff(stack: Stack) -> dict[str, str]:
    """Headers that sign requests in as the dev staff account."""
    return stack.staff_headers()


@pytest.fixture(scope="session")
def app_stack(stack: Stack) -> Iterator[AppStack]:
    started = AppStack(stack)
    yield started
    started.stop()


def _client_fixture(service: str):
    """A function-scoped HTTP client for one service of the stack."""

    @pytest.fixture(name=service)
    def client(stack: Stack) -> Iterator[httpx.Client]:
        with stack.client(service) as http:
            yield http

    return client


users = _client_fixture("users")
catalog = _client_fixture("catalog")
orders = _client_fixture("orders")
delivery = _client_fixture("delivery")


# Tests that run real servers are marked `integration`; `make test-fast` leaves them out.
# Those that need any of these fixtures...
SERVER_FIXTURES = {"workdir", "mongodb_uri", "nats_server", "stack", "app_stack", "empty_catalog"}
# ...and the modules that start their own (`winkit run`, Envoy, a database, uvicorn, wrk,
# the validators' binaries), whatever fixtures they use.
SERVER_MODULES = {
    "test_bench",
    "test_cli_and_startup",
    "test_crashes",
    "test_deploy_validators",
    "test_idle_connections",
    "test_jwks_backoff",
    "test_logging",
    "test_prod_mode",
    "test_run_command",
    "test_tracing",
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        module = item.module.__name__ if isinstance(item, pytest.Function) else ""
        if module in SERVER_MODULES or SERVER_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.integration)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):
    """Keep each phase's report on the test, so fixtures can tell a failed test at teardown."""
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report
