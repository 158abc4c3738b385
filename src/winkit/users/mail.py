"""Sending mail: SMTP in production, a mailbox read back over HTTP in dev. Whatever the
way, a message that does not go out is MailNotSent."""

from __future__ import annotations

import asyncio
import smtplib
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import Protocol

from winkit.core.email import email_key
from winkit.core.settings import Settings
from winkit.users.models import MailboxMessage, MailNotSent
from winkit.users.store import UsersStore


class MailSender(Protocol):
    async def send(self, to: str, subject: str, body: str) -> None:
        """Raises MailNotSent when the message does not go out."""


class SmtpSender:
    """The SMTP server, as smtplib speaks to it: its errors (OSErrors all) come as they
    are. ``SmtpMail`` is this as a MailSender."""

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


class SmtpMail:
    """Mail through the SMTP server: unreachable, timed out or refused, it is MailNotSent."""

    def __init__(self, smtp: SmtpSender) -> None:
        self._smtp = smtp

    async def send(self, to: str, subject: str, body: str) -> None:
        try:
            await self._smtp.send(to, subject, body)
        except OSError as exc:  # smtplib.SMTPException is one too
            raise MailNotSent(to) from exc


class DevMailbox:
    """Dev only: messages land in the database and are read back at GET /dev/outbox, by
    the recipient's identity: any spelling of the address finds them."""

    def __init__(self, store: UsersStore) -> None:
        self._store = store

    async def send(self, to: str, subject: str, body: str) -> None:
        message = MailboxMessage(to=to, to_key=email_key(to), subject=subject, body=body, sent_at=datetime.now(UTC))
        await self._store.add_mail(message)

    async def messages_to(self, to: str) -> list[MailboxMessage]:
        key = email_key(to)
        return [] if key is None else await self._store.mail_to(key)


class MailConfigurationError(RuntimeError):
    pass


def mail_sender(settings: Settings, dev_mailbox: DevMailbox | None) -> MailSender:
    if settings.smtp_host:
        return SmtpMail(SmtpSender(settings))
    if dev_mailbox is not None:
        return dev_mailbox
    raise MailConfigurationError("WINKIT_SMTP_HOST must be set in prod to send one-time codes")
