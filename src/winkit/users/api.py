"""User service routes: thin, they validate and hand over to the domain."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import EmailStr, ValidationError

from winkit.core.auth import CurrentPrincipal
from winkit.core.service import from_state
from winkit.users.accounts import Accounts
from winkit.users.addresses import AddressBook
from winkit.users.mail import DevMailbox
from winkit.users.models import AddressChange, ProfileChange
from winkit.users.otp import OtpService
from winkit.users.schemas import (
    AddressCreate,
    AddressUpdate,
    LoginRequest,
    OtpRequest,
    OtpSent,
    OutboxMessage,
    Profile,
    ProfileUpdate,
    RegisterRequest,
    SavedAddress,
    TokenResponse,
    UserOut,
)

router = APIRouter()


AccountsDep = Annotated[Accounts, Depends(from_state("accounts", Accounts))]
OtpDep = Annotated[OtpService, Depends(from_state("otp", OtpService))]
AddressesDep = Annotated[AddressBook, Depends(from_state("addresses", AddressBook))]

_FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


async def _login_request(request: Request) -> LoginRequest:
    """JSON ``{"email", "password"}``, or the OAuth2 password form (``username``/``password``)."""
    try:
        if request.headers.get("content-type", "").startswith(_FORM_TYPES):
            form = await request.form()
            return LoginRequest.model_validate(
                {"email": form.get("username") or form.get("email"), "password": form.get("password")}
            )
        return LoginRequest.model_validate_json(await request.body())
    except ValidationError as exc:
        raise RequestValidationError(exc.errors(include_input=False)) from exc


_LOGIN_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": LoginRequest.model_json_schema()},
            "application/x-www-form-urlencoded": {
                "schema": {
                    "type": "object",
                    "required": ["username", "password"],
                    "properties": {
                        "username": {"type": "string", "description": "Email address"},
                        "password": {"type": "string", "format": "password"},
                    },
                }
            },
        },
    }
}


@router.get("/.well-known/jwks.json", tags=["tokens"], summary="Public keys that verify access tokens")
async def jwks(request: Request) -> dict[str, Any]:
    keys: dict[str, Any] = request.app.state.token_issuer.jwks()
    return keys


@router.post("/otp/send", status_code=202, response_model=OtpSent, tags=["accounts"])
async def send_otp(body: OtpRequest, otp: OtpDep) -> OtpSent:
    """Email a 6-digit code for registration; one per address every 30 seconds. The answer
    is the same whether or not the address already has an account."""
    return OtpSent(expires_in=await otp.send(body.email))


@router.post("/register", status_code=201, response_model=UserOut, tags=["accounts"])
async def register(body: RegisterRequest, accounts: AccountsDep) -> UserOut:
    """Open an account with the code mailed to ``email`` (any spelling of that address); the
    account keeps the address the code was mailed to. A wrong code is a 400 whether or not
    the address is taken; only the right code for a taken address is a 409."""
    user = await accounts.register(
        name=body.name, email=body.email, password=body.password, otp=body.otp, phone=body.phone
    )
    return UserOut.of(user)


@router.post("/login", response_model=TokenResponse, tags=["accounts"], openapi_extra=_LOGIN_BODY)
async def login(request: Request, accounts: AccountsDep) -> TokenResponse:
    credentials = await _login_request(request)
    return TokenResponse.of(await accounts.login(credentials.email, credentials.password))


@router.get("/profile", response_model=Profile, tags=["profile"])
async def get_profile(
    principal: CurrentPrincipal,
    accounts: AccountsDep,
    user_id: Annotated[str | None, Query(max_length=64)] = None,
) -> Profile:
    """The caller's profile, or (staff and admins only) another user's."""
    return Profile.of(await accounts.profile(principal, user_id))


@router.patch("/profile", response_model=Profile, tags=["profile"])
async def update_profile(body: ProfileUpdate, principal: CurrentPrincipal, accounts: AccountsDep) -> Profile:
    """Change name and phone; role, email and id are not changeable here."""
    changes = ProfileChange(**body.model_dump(exclude_unset=True))
    return Profile.of(await accounts.update_profile(principal, changes))


@router.get("/addresses", response_model=list[SavedAddress], tags=["addresses"])
async def list_addresses(principal: CurrentPrincipal, addresses: AddressesDep) -> list[SavedAddress]:
    """The caller's saved addresses: the default first, then oldest first."""
    return [SavedAddress.of(address) for address in await addresses.addresses(principal)]


@router.post("/addresses", status_code=201, response_model=SavedAddress, tags=["addresses"])
async def add_address(body: AddressCreate, principal: CurrentPrincipal, addresses: AddressesDep) -> SavedAddress:
    """Save an address (at most 20); the first one becomes the default."""
    return SavedAddress.of(await addresses.add(principal, body, make_default=body.is_default))


@router.get("/addresses/{address_id}", response_model=SavedAddress, tags=["addresses"])
async def get_address(address_id: str, principal: CurrentPrincipal, addresses: AddressesDep) -> SavedAddress:
    return SavedAddress.of(await addresses.get(principal, address_id))


@router.patch("/addresses/{address_id}", response_model=SavedAddress, tags=["addresses"])
async def update_address(
    address_id: str, body: AddressUpdate, principal: CurrentPrincipal, addresses: AddressesDep
) -> SavedAddress:
    """Change some fields; ``"is_default": true`` makes this the default address."""
    changes = AddressChange(**body.model_dump(exclude_unset=True, exclude={"is_default"}))
    return SavedAddress.of(await addresses.update(principal, address_id, changes, is_default=body.is_default))


@router.delete("/addresses/{address_id}", status_code=204, response_class=Response, tags=["addresses"])
async def delete_address(address_id: str, principal: CurrentPrincipal, addresses: AddressesDep) -> None:
    """Delete; if it was the default, the oldest remaining address becomes the default."""
    await addresses.delete(principal, address_id)


dev_router = APIRouter(prefix="/dev", tags=["dev"])


# The path says "outbox" for the clients and docs that use it; in the code this is the dev
# mailbox, and "outbox" means only the event outbox.
@dev_router.get("/outbox", response_model=list[OutboxMessage])
async def dev_mail(
    request: Request, to: Annotated[EmailStr, Query(description="Recipient address")]
) -> list[OutboxMessage]:
    """Dev only: mail the service would have sent to ``to`` (any spelling), newest first."""
    mailbox: DevMailbox = request.app.state.dev_mailbox
    return [OutboxMessage.of(message) for message in await mailbox.messages_to(to)]
