"""Builds the user service app."""

from __future__ import annotations

from contextlib import AsyncExitStack
from functools import partial

from fastapi import APIRouter, FastAPI

from winkit.core.auth import JwksSource, TokenIssuer, TokenVerifier
from winkit.core.keys import load_signing_key
from winkit.core.service import create_service_app
from winkit.core.settings import Settings
from winkit.users import api
from winkit.users.accounts import Accounts, ensure_dev_staff
from winkit.users.addresses import AddressBook
from winkit.users.mail import DevMailbox, mail_sender
from winkit.users.otp import OtpService
from winkit.users.sign_in_limits import SignInLimits, SignInRate
from winkit.users.store import UsersStore


async def _startup(app: FastAPI, _: AsyncExitStack, *, sign_in_rate: SignInRate) -> None:
    settings: Settings = app.state.settings
    store = UsersStore(app.state.db)
    await store.ensure_indexes()
    issuer = TokenIssuer(load_signing_key(settings), settings)
    # The issuer verifies its own tokens from memory, not over HTTP to itself.
    app.state.token_verifier = TokenVerifier(JwksSource.static(issuer.jwks()), settings)
    app.state.token_issuer = issuer
    app.state.store = store
    app.state.dev_mailbox = DevMailbox(store) if settings.env == "dev" else None
    sign_in_limits = SignInLimits(store, sign_in_rate)
    app.state.otp = OtpService(store, mail_sender(settings, app.state.dev_mailbox), settings, sign_in_limits)
    app.state.accounts = Accounts(store, app.state.otp, issuer, sign_in_limits)
    app.state.addresses = AddressBook(store)
    if settings.env == "dev":
        await ensure_dev_staff(store)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    # A bad limit stops the service before it serves anyone, not at the first sign-in.
    sign_in_rate = SignInRate.parse(settings.sign_in_rate_limit)
    router = APIRouter()
    router.include_router(api.router)
    if settings.env == "dev":
        router.include_router(api.dev_router)
    return create_service_app(
        name="users",
        settings=settings,
        router=router,
        startup=partial(_startup, sign_in_rate=sign_in_rate),
        title="Winkit users",
        description="One-time codes, registration, login, profiles, address books and the token signing keys.",
    )
