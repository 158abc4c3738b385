"""Session-wide real infrastructure: SecantusDB and the services over HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from harness import Customer, LiveServer, bound_socket, free_port, login, register
from winkit.launcher import Supervisor, mongodb_child
from winkit.platform.settings import Settings
from winkit.users.accounts import DEV_STAFF_EMAIL, DEV_STAFF_PASSWORD

SERVICE_NAMES = ("users", "catalog")


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


@dataclass
class Stack:
    settings: Settings
    servers: dict[str, LiveServer] = field(default_factory=dict)

    def client(self, service: str) -> httpx.Client:
        return httpx.Client(base_url=self.servers[service].url, timeout=30)

    def customer(self) -> Customer:
        with self.client("users") as users:
            return register(users)

    def staff_headers(self) -> dict[str, str]:
        with self.client("users") as users:
            return {"Authorization": f"Bearer {login(users, DEV_STAFF_EMAIL, DEV_STAFF_PASSWORD)}"}


def stack_settings(workdir: Path, mongodb_uri: str, urls: dict[str, str], **overrides: object) -> Settings:
    return Settings(
        env="dev",
        data_dir=workdir / "data",
        mongodb_uri=mongodb_uri,
        log_level="WARNING",
        **{f"{name}_url": url for name, url in urls.items()},
        **overrides,
    )


@pytest.fixture(scope="session")
def stack(workdir: Path, mongodb_uri: str) -> Iterator[Stack]:
    from winkit.catalog.app import create_app as catalog_app
    from winkit.users.app import create_app as users_app

    factories = {"users": users_app, "catalog": catalog_app}
    sockets = {name: bound_socket() for name in SERVICE_NAMES}
    urls = {name: f"http://127.0.0.1:{s.getsockname()[1]}" for name, s in sockets.items()}
    settings = stack_settings(workdir, mongodb_uri, urls)
    result = Stack(settings)
    for name in SERVICE_NAMES:
        server = LiveServer(factories[name](settings), sockets[name])
        server.start()
        result.servers[name] = server
    yield result
    for server in reversed(result.servers.values()):
        server.stop()


@pytest.fixture
def users(stack: Stack) -> Iterator[httpx.Client]:
    with stack.client("users") as client:
        yield client


@pytest.fixture
def catalog(stack: Stack) -> Iterator[httpx.Client]:
    with stack.client("catalog") as client:
        yield client
