"""Production behaviour: real SMTP for codes, no dev outbox, no seeded accounts, and
what a service does when its own database goes away."""

from __future__ import annotations

import email
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from harness import LiveServer, assert_problem, bound_socket, eventually, free_port, unique_email

from winkit.core.keys import KeyConfigurationError, load_signing_key, service_secret
from winkit.core.settings import Settings
from winkit.launcher import Supervisor, mongodb_child
from winkit.users.accounts import DEV_STAFF_EMAIL, DEV_STAFF_PASSWORD
from winkit.users.mail import MailConfigurationError, mail_sender


class Inbox:
    def __init__(self) -> None:
        self.messages: list[email.message.Message] = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append(email.message_from_bytes(envelope.content))
        return "250 OK"


@pytest.fixture(scope="module")
def smtp() -> Iterator[tuple[Inbox, int]]:
    inbox, port = Inbox(), free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    yield inbox, port
    controller.stop()


@pytest.fixture(scope="module")
def private_mongodb(tmp_path_factory) -> Iterator[tuple[str, Supervisor]]:
    """A database of its own, so nothing the dev stack seeded is visible."""
    workdir = tmp_path_factory.mktemp("prod")
    port = free_port()
    supervisor = Supervisor(workdir / "logs")
    supervisor.start(mongodb_child(port, workdir / "mongodb"))
    yield f"mongodb://127.0.0.1:{port}/?directConnection=true&retryWrites=false", supervisor
    supervisor.stop_all()


@pytest.fixture(scope="module")
def prod_users(private_mongodb, smtp, tmp_path_factory) -> Iterator[str]:
    from winkit.users.app import create_app

    key_file = tmp_path_factory.mktemp("keys") / "jwt.pem"
    key_file.write_bytes(
        Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    sock = bound_socket()
    settings = Settings(
        env="prod",
        data_dir=key_file.parent,
        mongodb_uri=private_mongodb[0],
        jwt_private_key_file=key_file,
        smtp_host="127.0.0.1",
        smtp_port=smtp[1],
        smtp_starttls=False,
        users_url=f"http://127.0.0.1:{sock.getsockname()[1]}",
        log_level="WARNING",
    )
    server = LiveServer(create_app(settings), sock)
    server.start()
    yield server.url
    server.stop()


def test_codes_go_out_by_smtp_and_registration_works(prod_users, smtp):
    import httpx

    inbox, _ = smtp
    address = unique_email("prod")
    with httpx.Client(base_url=prod_users) as users:
        assert users.post("/otp/send", json={"email": address}).status_code == 202
        [message] = [m for m in inbox.messages if m["To"] == address]
        code = next(w.rstrip(".") for w in message.get_payload().split() if w.rstrip(".").isdigit())
        assert message["Subject"].startswith(code)
        body = {"name": "Prod User", "email": address, "password": "long-enough", "otp": code}
        assert users.post("/register", json=body).status_code == 201
        assert users.post("/login", json={"email": address, "password": "long-enough"}).status_code == 200


def test_prod_has_no_dev_outbox_and_no_seeded_staff(prod_users):
    import httpx

    with httpx.Client(base_url=prod_users) as users:
        assert_problem(users.get("/dev/outbox", params={"to": "a@example.com"}), 404)
        assert_problem(users.post("/login", json={"email": DEV_STAFF_EMAIL, "password": DEV_STAFF_PASSWORD}), 401)


def test_prod_refuses_to_start_without_configured_secrets(tmp_path: Path):
    settings = Settings(env="prod", data_dir=tmp_path)
    with pytest.raises(KeyConfigurationError):
        load_signing_key(settings)
    with pytest.raises(KeyConfigurationError):
        service_secret(settings)
    with pytest.raises(MailConfigurationError):
        mail_sender(settings, None)
    assert not (tmp_path / "keys").exists()  # nothing generated in prod


def test_dev_keys_are_generated_once_and_kept(tmp_path: Path):
    settings = Settings(env="dev", data_dir=tmp_path)
    first = load_signing_key(settings)
    assert (tmp_path / "keys" / "jwt-ed25519.pem").stat().st_mode & 0o777 == 0o600
    assert load_signing_key(settings).private_bytes_raw() == first.private_bytes_raw()
    assert service_secret(settings) == service_secret(settings)


def test_health_is_503_when_the_database_is_gone(tmp_path_factory, nats_server):
    import httpx

    from winkit.catalog.app import create_app

    workdir = tmp_path_factory.mktemp("doomed")
    port = free_port()
    supervisor = Supervisor(workdir / "logs")
    supervisor.start(mongodb_child(port, workdir / "mongodb"))
    settings = Settings(
        env="dev",
        data_dir=workdir,
        mongodb_uri=f"mongodb://127.0.0.1:{port}/?directConnection=true&retryWrites=false",
        nats_url=nats_server.url,
        seed_demo_catalog=False,
        log_level="WARNING",
    )
    server = LiveServer(create_app(settings), bound_socket())
    server.start()
    try:
        with httpx.Client(base_url=server.url, timeout=30) as catalog:
            assert catalog.get("/health").status_code == 200
            supervisor.stop_all()
            eventually(lambda: catalog.get("/health").status_code == 503)
            problem = assert_problem(catalog.get("/health"), 503)
            assert problem["checks"]["mongodb"] == "down"
    finally:
        server.stop()
