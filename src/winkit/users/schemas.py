"""The user service's API contract."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, EmailStr, StringConstraints, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

from winkit.core.address import City, DeliveryAddress, Line, MobileNumber, OptionalLine, Pincode
from winkit.core.address import Name as RecipientName
from winkit.core.auth import Role
from winkit.users.models import AccessGrant, AddressEntry, MailboxMessage, UserAccount

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]


def _format(pattern: str, kind: str, message: str) -> AfterValidator:
    """A format check that says what to type, not the pattern it checks with."""
    compiled = re.compile(pattern)

    def check(value: str) -> str:
        if not compiled.fullmatch(value):
            raise PydanticCustomError(kind, message)
        return value

    return AfterValidator(check)


Phone = Annotated[
    str,
    StringConstraints(strip_whitespace=True, max_length=20),
    _format(r"\+?[0-9 ()-]{7,20}", "phone", "Enter a phone number: 7 to 20 digits, spaces, brackets or dashes."),
]
Password = Annotated[str, StringConstraints(min_length=8, max_length=256)]
# Login only looks the address up, so any address-shaped text will do (staff@winkit.local
# uses a special-use domain that strict validation refuses): it is found by its identity
# (winkit.core.email.email_key), and an address that has none is a wrong login.
LoginEmail = Annotated[
    str,
    StringConstraints(strip_whitespace=True, max_length=254),
    _format(r"[^@\s]+@[^@\s]+", "email", "Enter the email address you signed up with."),
]
OtpCode = Annotated[
    str,
    StringConstraints(strip_whitespace=True, max_length=6),
    _format(r"[0-9]{6}", "otp", "Enter the 6 digits of the code we emailed you."),
]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class OtpRequest(Strict):
    email: EmailStr


class OtpSent(BaseModel):
    expires_in: int


class RegisterRequest(Strict):
    name: Name
    email: EmailStr
    password: Password
    otp: OtpCode
    phone: Phone | None = None


class LoginRequest(BaseModel):
    email: LoginEmail
    password: Annotated[str, StringConstraints(min_length=1, max_length=256)]


class TokenResponse(BaseModel):
    access_token: str
    token_type: str = "bearer"
    expires_in: int
    user_id: str
    role: Role

    @classmethod
    def of(cls, grant: AccessGrant) -> TokenResponse:
        return cls(
            access_token=grant.token,
            expires_in=grant.expires_in,
            user_id=str(grant.account.id),
            role=grant.account.role,
        )


class UserOut(BaseModel):
    id: str
    name: str
    email: str
    role: Role
    created_at: datetime

    @classmethod
    def of(cls, user: UserAccount) -> UserOut:
        return cls(id=str(user.id), name=user.name, email=user.email, role=user.role, created_at=user.created_at)


class Profile(UserOut):
    phone: str | None = None
    updated_at: datetime

    @classmethod
    def of(cls, user: UserAccount) -> Profile:
        return cls(**UserOut.of(user).model_dump(), phone=user.phone, updated_at=user.changed_at)


class ProfileUpdate(Strict):
    """Fields left out stay as they are; ``"phone": null`` clears the phone."""

    name: Name | None = None
    phone: Phone | None = None

    @field_validator("name")
    @classmethod
    def name_is_not_null(cls, value: str | None) -> str:
        if value is None:
            raise ValueError("name cannot be null")
        return value


class OutboxMessage(BaseModel):
    to: str
    subject: str
    body: str
    sent_at: datetime

    @classmethod
    def of(cls, message: MailboxMessage) -> OutboxMessage:
        return cls(to=message.to, subject=message.subject, body=message.body, sent_at=message.sent_at)


class AddressCreate(DeliveryAddress):
    is_default: bool = False


class AddressUpdate(Strict):
    """Fields left out stay as they are; ``null`` clears line2 or landmark."""

    name: RecipientName | None = None
    phone: MobileNumber | None = None
    line1: Line | None = None
    line2: OptionalLine = None
    landmark: OptionalLine = None
    city: City | None = None
    pincode: Pincode | None = None
    is_default: bool | None = None

    @field_validator("name", "phone", "line1", "city", "pincode", "is_default")
    @classmethod
    def required_is_not_null(cls, value: object, info: ValidationInfo) -> object:
        if value is None:
            message = "{field} cannot be cleared; leave it out to keep it."
            raise PydanticCustomError("not_null", message, {"field": info.field_name})
        return value


class SavedAddress(BaseModel):
    id: str
    name: str
    phone: str
    line1: str
    line2: str | None = None
    landmark: str | None = None
    city: str
    pincode: str
    is_default: bool
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, address: AddressEntry) -> SavedAddress:
        return cls(**address.model_dump(exclude={"id", "user_id"}), id=str(address.id))
