"""The first write after an idle spell succeeds, although the database has closed the
connections that were idle in the pool (SecantusDB does after 300 s, as a load balancer
in front of MongoDB would). Here the server's limit is 2 s, so the test need not idle for
minutes; the client's limit is scaled down with it."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from harness import LiveServer, bound_socket, free_port, unique_email
from secantus.server import DEFAULT_CLIENT_IDLE_TIMEOUT_S

from winkit.core import database
from winkit.core.settings import Settings
from winkit.launcher import Supervisor, mongodb_child

SERVER_IDLE_LIMIT = 2.0  # seconds


@pytest.fixture(scope="module")
def impatient_mongodb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """A SecantusDB of its own that closes client connections idle for SERVER_IDLE_LIMIT."""
    workdir = tmp_path_factory.mktemp("idle")
    port = free_port()
    supervisor = Supervisor(workdir / "logs")
    supervisor.start(mongodb_child(port, workdir / "mongodb", client_idle_timeout=SERVER_IDLE_LIMIT), timeout=60)
    yield f"mongodb://127.0.0.1:{port}/?directConnection=true&retryWrites=false", workdir
    supervisor.stop_all()


def test_services_close_idle_connections_before_secantusdb_does() -> None:
    assert database.MAX_IDLE_TIME_MS / 1000 < DEFAULT_CLIENT_IDLE_TIMEOUT_S
    client = database.connect(Settings(mongodb_uri="mongodb://127.0.0.1:1/?directConnection=true"), "users")
    assert client.options.pool_options.max_idle_time_seconds == database.MAX_IDLE_TIME_MS / 1000


def test_first_write_after_an_idle_spell_succeeds(
    impatient_mongodb: tuple[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    from winkit.users.app import create_app

    uri, workdir = impatient_mongodb
    # Against the server's 2 s, what 60 s is against its 300 s.
    monkeypatch.setattr(database, "MAX_IDLE_TIME_MS", int(SERVER_IDLE_LIMIT * 1000 / 5))
    settings = Settings(env="dev", data_dir=workdir / "data", mongodb_uri=uri, log_level="WARNING")
    # Under uvloop (uvicorn's choice when installed) the driver sometimes notices a closed
    # pooled socket and sometimes not; on the standard loop it never does, so without the
    # client's idle limit this test fails every time rather than now and then.
    server = LiveServer(create_app(settings), bound_socket(), loop="asyncio")
    server.start()
    try:
        with httpx.Client(base_url=server.url, timeout=30) as users:
            # Sending a code writes the code and the dev outbox message.
            assert users.post("/otp/send", json={"email": unique_email()}).status_code == 202
            # The precondition, not a wait for a result: every pooled connection goes idle
            # past the server's limit, so the server closes them all.
            time.sleep(SERVER_IDLE_LIMIT + 1.5)
            response = users.post("/otp/send", json={"email": unique_email()})
            assert response.status_code == 202, response.text
    finally:
        server.stop()
