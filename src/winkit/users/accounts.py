"""Accounts: registration with a one-time code, password login, profiles, staff accounts."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from winkit.core.auth import Principal, Role, TokenIssuer
from winkit.core.email import email_key
from winkit.core.errors import BadRequest, Conflict, Forbidden, NotFound, Unauthorized
from winkit.users.models import AccessGrant, ProfileChange, UserAccount
from winkit.users.otp import OtpService
from winkit.users.sign_in_limits import SignInLimits
from winkit.users.store import EmailTaken, UsersStore

DEV_STAFF_EMAIL = "staff@winkit.local"
DEV_STAFF_PASSWORD = "winkit-staff-dev"

_hasher = PasswordHasher()
# Verifying against this when the email is unknown makes both failures cost the same time.
_DUMMY_HASH = _hasher.hash("winkit-timing-equaliser")


async def hash_password(password: str) -> str:
    # Argon2 is deliberately slow: off the event loop.
    return await asyncio.to_thread(_hasher.hash, password)


async def _password_matches(stored_hash: str, password: str) -> bool:
    try:
        return await asyncio.to_thread(_hasher.verify, stored_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def account_key(email: str) -> str:
    """The identity an account with ``email`` is stored and found under."""
    key = email_key(email)
    if key is None:
        raise BadRequest("This is not a valid email address.")
    return key


async def create_account(
    store: UsersStore, *, name: str, email: str, password: str, role: Role, phone: str | None = None
) -> UserAccount:
    key = account_key(email)
    now = datetime.now(UTC)
    user = UserAccount(
        name=name,
        email=email,
        email_key=key,
        phone=phone,
        role=role,
        password_hash=await hash_password(password),
        created_at=now,
        updated_at=now,
    )
    try:
        await store.insert_user(user)
    except EmailTaken as exc:
        raise Conflict("An account with this email already exists.") from exc
    return user


async def ensure_dev_staff(store: UsersStore) -> None:
    if await store.user_by_email(account_key(DEV_STAFF_EMAIL)) is None:
        with contextlib.suppress(Conflict):  # created concurrently by another instance
            await create_account(
                store,
                name="Winkit Staff (dev)",
                email=DEV_STAFF_EMAIL,
                password=DEV_STAFF_PASSWORD,
                role=Role.STAFF,
            )


class Accounts:
    def __init__(self, store: UsersStore, otp: OtpService, issuer: TokenIssuer, sign_in_limits: SignInLimits) -> None:
        self._store = store
        self._otp = otp
        self._issuer = issuer
        self._sign_in_limits = sign_in_limits

    async def register(self, *, name: str, email: str, password: str, otp: str, phone: str | None) -> UserAccount:
        # The code first: a wrong one is a 400 whether or not the address has an account, so
        # only whoever reads the mailbox learns that it is taken (a 409, and the code is spent).
        # The account gets the address the code was mailed to, not this request's spelling.
        address = await self._otp.verify(email, otp)
        return await create_account(
            self._store, name=name, email=address, password=password, role=Role.CUSTOMER, phone=phone
        )

    async def login(self, email: str, password: str) -> AccessGrant:
        # Every attempt counts, right or wrong: a guesser gets no more tries for guessing well.
        await self._sign_in_limits.count_attempt(email)
        # An address without a key (not valid) matches no account: a wrong login like any other.
        key = email_key(email)
        user = None if key is None else await self._store.user_by_email(key)
        matches = await _password_matches(user.password_hash if user else _DUMMY_HASH, password)
        if user is None or not matches:
            raise Unauthorized("The email or password is wrong.")
        if _hasher.check_needs_rehash(user.password_hash):
            await self._store.set_password_hash(user.id, await hash_password(password))
        token, expires_in = self._issuer.issue(str(user.id), user.role)
        return AccessGrant(account=user, token=token, expires_in=expires_in)

    async def profile(self, caller: Principal, user_id: str | None) -> UserAccount:
        target = user_id or caller.user_id
        if target != caller.user_id and not caller.is_staff:
            raise Forbidden("You may only read your own profile.")
        user = await self._store.user_by_id(target)
        if user is None:
            raise NotFound("No such user.")
        return user

    async def update_profile(self, caller: Principal, changes: ProfileChange) -> UserAccount:
        user = await self._store.update_user(caller.user_id, changes, updated_at=datetime.now(UTC))
        if user is None:
            raise NotFound("No such user.")
        return user
