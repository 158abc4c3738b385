"""Secrets from mounted files (`WINKIT_*_FILE`), as Kubernetes and Compose give them: the
SMTP password and each service's own MongoDB credentials."""

from __future__ import annotations

import smtplib
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP as SMTPServer
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session
from harness import free_port

from winkit.core.database import connect
from winkit.core.settings import Settings
from winkit.users.mail import SmtpSender


class AcceptingHandler:
    def __init__(self) -> None:
        self.recipients: list[str] = []

    async def handle_DATA(self, server: SMTPServer, session: Session, envelope: Envelope) -> str:
        self.recipients += envelope.rcpt_tos
        return "250 OK"


class Authenticator:
    """Accepts one login and password; remembers every attempt."""

    def __init__(self, login: bytes, password: bytes) -> None:
        self.expected = (login, password)
        self.attempts: list[tuple[bytes, bytes]] = []

    def __call__(
        self, server: SMTPServer, session: Session, envelope: Envelope, mechanism: str, data: object
    ) -> AuthResult:
        assert isinstance(data, LoginPassword)
        self.attempts.append((data.login, data.password))
        # handled=False: aiosmtpd answers a refusal itself (535).
        return AuthResult(success=(data.login, data.password) == self.expected, handled=False)


@pytest.fixture
def smtp_with_auth() -> Iterator[tuple[AcceptingHandler, Authenticator, int]]:
    handler, authenticator, port = AcceptingHandler(), Authenticator(b"winkit", b"from-a-file"), free_port()
    # Plain-text AUTH on loopback only: the test server has no certificate for STARTTLS.
    # One mechanism, so one attempt per login.
    controller = Controller(
        handler,
        hostname="127.0.0.1",
        port=port,
        authenticator=authenticator,
        auth_require_tls=False,
        auth_exclude_mechanism=["LOGIN"],
    )
    controller.start()
    yield handler, authenticator, port
    controller.stop()


def smtp_settings(port: int, password_file: Path) -> Settings:
    return Settings(
        smtp_host="127.0.0.1",
        smtp_port=port,
        smtp_starttls=False,
        smtp_username="winkit",
        smtp_password_file=password_file,
    )


async def test_smtp_signs_in_with_the_password_from_its_file(smtp_with_auth, tmp_path: Path) -> None:
    handler, authenticator, port = smtp_with_auth
    password_file = tmp_path / "smtp-password"
    password_file.write_text("from-a-file\n")  # as `kubectl create secret --from-file` leaves it
    await SmtpSender(smtp_settings(port, password_file)).send("shopper@example.com", "Your code", "123456")
    assert authenticator.attempts == [(b"winkit", b"from-a-file")]
    assert handler.recipients == ["shopper@example.com"]


async def test_a_wrong_password_in_the_file_is_refused_not_ignored(smtp_with_auth, tmp_path: Path) -> None:
    handler, authenticator, port = smtp_with_auth
    password_file = tmp_path / "smtp-password"
    password_file.write_text("stale\n")
    with pytest.raises(smtplib.SMTPAuthenticationError):
        await SmtpSender(smtp_settings(port, password_file)).send("shopper@example.com", "Your code", "123456")
    assert authenticator.attempts == [(b"winkit", b"stale")]
    assert handler.recipients == []


def test_each_service_signs_in_to_mongodb_as_its_own_user(tmp_path: Path) -> None:
    """The URI (hosts, replica set, TLS) is shared; the user and password are the service's."""
    password_file = tmp_path / "mongodb-password"
    password_file.write_text("orders-secret\n")
    settings = Settings(
        mongodb_uri="mongodb://mongo-0.mongo:27017/?replicaSet=rs0&tls=true&authSource=admin",
        mongodb_username="winkit-orders",
        mongodb_password_file=password_file,
    )
    client = connect(settings, "orders")
    credentials = client.options.pool_options._credentials
    assert credentials is not None
    assert (credentials.username, credentials.password, credentials.source) == (
        "winkit-orders",
        "orders-secret",
        "admin",
    )


def test_without_a_username_the_uris_own_credentials_stay() -> None:
    settings = Settings(mongodb_uri="mongodb://from-uri:pw@127.0.0.1:27017/?directConnection=true")
    credentials = connect(settings, "users").options.pool_options._credentials
    assert credentials is not None
    assert (credentials.username, credentials.password) == ("from-uri", "pw")
