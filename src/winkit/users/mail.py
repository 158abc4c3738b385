"""Sending mail: SMTP in production, a mailbox read back over HTTP in dev."""

from __future__ import annotations

import asyncio
import smtplib
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import Protocol

from winkit.core.database import Document
from winkit.core.email import email_key
from winkit.core.settings import Settings
from winkit.users.store import UsersStore


class MailSender(Protocol):
    async def send(self, to: str, subject: str, body: str) -> None: ...


class SmtpSender:
    def __init__(self, settings: Settings) -> None:
        assert settings.smtp_host is not None
        self._settings = settings

    def _send_blocking(self, message: EmailMessage) -> None:
        s = self._settings
        with smtplib.SMTP(s.smtp_host or "", s.smtp_port, timeout=10) as smtp:
            if s.smtp_starttls:
                smtp.starttls()
            password = s.effective_smtp_password()
            if s.smtp_username and password:
                smtp.login(s.smtp_username, password)
            smtp.send_message(message)

    async def send(self, to: str, subject: str, body: str) -> None:
        message = EmailMessage()
        message["From"] = self._settings.mail_from
        message["To"] = to
        message["Subject"] = subject
        message.set_content(body)
        # smtplib blocks; a thread keeps the event loop serving other requests.
        await asyncio.to_thread(self._send_blocking, message)


class DevMailbox:
    """Dev only: messages land in the database and are read back at GET /dev/outbox, by
    the recipient's identity: any spelling of the address finds them."""

    def __init__(self, store: UsersStore) -> None:
        self._store = store

    async def send(self, to: str, subject: str, body: str) -> None:
        await self._store.add_mail(
            {
                "to": to,
                "to_key": email_key(to),
                "subject": subject,
                "body": body,
                "sent_at": datetime.now(UTC),
            }
        )

    async def messages_to(self, to: str) -> list[Document]:
        key = email_key(to)
        return [] if key is None else await self._store.mail_to(key)


class MailConfigurationError(RuntimeError):
    pass


def mail_sender(settings: Settings, dev_mailbox: DevMailbox | None) -> MailSender:
    if settings.smtp_host:
        return SmtpSender(settings)
    if dev_mailbox is not None:
        return dev_mailbox
    raise MailConfigurationError("WINKIT_SMTP_HOST must be set in prod to send one-time codes")
