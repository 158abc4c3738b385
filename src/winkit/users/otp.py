"""One-time email codes: random, stored only as a keyed hash, short-lived, few tries.

A code belongs to the address's identity (winkit.core.email.email_key) and remembers
the address it was mailed to: that address, not whichever spelling presents the code, is
the one an account registered with the code gets.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import UTC, datetime, timedelta

from winkit.core.email import email_key
from winkit.core.errors import BadRequest, ServiceUnavailable, TooManyRequests
from winkit.core.settings import Settings
from winkit.users.mail import MailSender
from winkit.users.models import MailNotSent, OneTimeCode
from winkit.users.sign_in_limits import SignInLimits
from winkit.users.store import UsersStore


def _hash(code: str, salt: str) -> str:
    return hmac.new(salt.encode(), code.encode(), hashlib.sha256).hexdigest()


class OtpService:
    def __init__(self, store: UsersStore, sender: MailSender, settings: Settings, sign_in_limits: SignInLimits) -> None:
        self._store = store
        self._sender = sender
        self._sign_in_limits = sign_in_limits
        self._ttl = settings.otp_ttl
        self._max_attempts = settings.otp_max_attempts
        self._cooldown = settings.otp_resend_cooldown

    async def send(self, email: str) -> int:
        """Mail a fresh code to ``email``; returns its lifetime in seconds.

        Accounts are never looked at: the answer is the same whether the address has one
        or not, so it tells nobody which addresses are registered. Every request counts
        against the address's sign-in limit, one refused by the resend cooldown too."""
        await self._sign_in_limits.count_attempt(email)
        key = email_key(email)
        if key is None:
            raise BadRequest("This is not a valid email address.")
        now = datetime.now(UTC)
        code = f"{secrets.randbelow(1_000_000):06d}"
        salt = secrets.token_hex(16)
        record = OneTimeCode(
            email_key=key,
            email=email,
            code_hash=_hash(code, salt),
            salt=salt,
            attempts=0,
            sent_at=now,
            expires_at=now + timedelta(seconds=self._ttl),
        )
        if not await self._store.start_code(record, now - timedelta(seconds=self._cooldown)):
            existing = await self._store.code(key)
            wait = self._cooldown
            if existing is not None:
                wait = int((existing.sent_at + timedelta(seconds=self._cooldown) - now).total_seconds()) + 1
            raise TooManyRequests(
                "A code was sent to this address moments ago; wait before asking again.",
                retry_after=wait,
            )
        minutes = self._ttl // 60
        body = (
            f"Your Winkit code is {code}.\n\n"
            f"It is valid for {minutes} minutes. If you did not ask for it, ignore this message."
        )
        try:
            await self._sender.send(email, f"{code} is your Winkit code", body)
        except MailNotSent as exc:
            await self._store.drop_code(key)
            raise ServiceUnavailable("The code could not be sent; try again shortly.") from exc
        return self._ttl

    async def verify(self, email: str, code: str) -> str:
        """Accept the code once and return the address it was mailed to, or raise
        BadRequest; every try counts against the limit."""
        key = email_key(email)
        invalid = BadRequest("The code is wrong, expired or used up; ask for a new one.")
        if key is None:
            raise invalid
        record = await self._store.code(key)
        if record is None or record.expires_at <= datetime.now(UTC):
            raise invalid
        # Counting the try before comparing stops parallel guesses from exceeding the limit.
        if not await self._store.count_attempt(key, self._max_attempts):
            raise invalid
        presented = _hash(code, record.salt)
        if not hmac.compare_digest(presented, record.code_hash):
            raise invalid
        if not await self._store.consume_code(key, presented):
            raise invalid  # consumed concurrently by another request
        # A code sent before codes kept their address (they live minutes) has none.
        return email if record.email is None else record.email
