"""Sign-in limits: attempts per account email on login and one-time codes.

Counted in the service's database, so a limit holds across replicas of the service and for
callers that reach it directly. The count belongs to the address's identity
(winkit.core.email.email_key), the key accounts and codes are stored under: every
spelling of one address spends one allowance, and an address that has no key (not valid)
matches no account and is not counted.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from winkit.core.email import email_key
from winkit.core.errors import TooManyRequests
from winkit.core.settings import parse_rate_limit
from winkit.users.store import UsersStore


class InvalidSignInRate(ValueError):
    pass


@dataclass(frozen=True)
class SignInRate:
    attempts: int
    window_seconds: int

    @classmethod
    def parse(cls, text: str) -> SignInRate:
        """``"10/minute"``, ``"3/hour"``: a positive count per second, minute, hour or day."""
        try:
            return cls(*parse_rate_limit(text))
        except ValueError:
            raise InvalidSignInRate(
                f"WINKIT_SIGN_IN_RATE_LIMIT is {text!r}; it must be a number of attempts per "
                "second, minute, hour or day, written like '10/minute' or '3/hour'."
            ) from None


class SignInLimits:
    """A sliding window counter per email: this window's attempts plus the previous
    window's, weighted by the share of it that the last ``window_seconds`` still cover.
    Two small documents per email, each attempt one atomic increment, and no double burst
    at a window's edge as a fixed window would allow. Refused attempts are not counted, so
    hammering an address does not push its wait any further out."""

    def __init__(self, store: UsersStore, rate: SignInRate, clock: Callable[[], float] = time.time) -> None:
        self._store = store
        self._rate = rate
        self._clock = clock

    async def count_attempt(self, email: str) -> None:
        """Count one sign-in attempt for ``email``, or raise TooManyRequests if its
        allowance is spent."""
        key = email_key(email)
        if key is None:
            return
        window = self._rate.window_seconds
        now = self._clock()
        start = int(now // window) * window
        elapsed = (now - start) / window
        previous = await self._store.sign_in_attempts(_window_id(key, window, start - window))
        # This window may hold what the previous one's weighted attempts leave of the limit.
        allowance = self._rate.attempts - math.floor(previous * (1 - elapsed))
        # Kept through the next window, which weighs it as its previous one; then swept.
        expires_at = datetime.fromtimestamp(start + 2 * window, UTC)
        if allowance > 0 and await self._store.add_sign_in_attempt(
            _window_id(key, window, start), allowance, expires_at
        ):
            return
        # Refused: this window holds its whole allowance (none yet if that is below one).
        wait = self._seconds_until_free(previous, max(allowance, 0), elapsed)
        # Whole seconds past the instant it frees: at that very instant it is still full.
        seconds = math.floor(wait) + 1
        raise TooManyRequests(
            f"Too many sign-in attempts for this email; try again in {_in_words(seconds)}.",
            retry_after=seconds,
        )

    def _seconds_until_free(self, previous: int, current: int, elapsed: float) -> float:
        """How long until one more attempt fits, if none is counted meanwhile."""
        limit, window = self._rate.attempts, self._rate.window_seconds
        if current < limit:
            # In this window, once the previous one's weighted attempts fall below what
            # this one leaves free: previous * (1 - f) < limit - current.
            return (1 - (limit - current) / previous - elapsed) * window
        # In the next window, where this one is the previous: current * (1 - f) < limit.
        return (2 - limit / current - elapsed) * window


def _window_id(key: str, window: int, start: int) -> str:
    # The window's length too: windows of two rates (replicas mid-way through a change of
    # the setting) that start at the same instant, as a minute and an hour do on the
    # hour, must not share one count.
    return f"{key}:{window}s:{start}"


def _in_words(seconds: int) -> str:
    if seconds < 120:
        return "1 second" if seconds == 1 else f"{seconds} seconds"
    minutes = math.ceil(seconds / 60)
    if minutes < 120:
        return f"{minutes} minutes"
    return f"{math.ceil(minutes / 60)} hours"
