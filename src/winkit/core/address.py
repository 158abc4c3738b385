"""A delivery address in India: the one shape the address book and checkout share.

Each field says in its error what to type, rather than quoting a pattern.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints
from pydantic_core import PydanticCustomError

_PINCODE = re.compile(r"[1-9][0-9]{5}")
# Indian mobile numbers: ten digits starting 6-9, optionally after +91, 91 or 0.
_MOBILE = re.compile(r"(?:\+?91|0)?([6-9][0-9]{9})")
_PHONE_SEPARATORS = re.compile(r"[\s()-]")


def _pincode(value: str) -> str:
    value = value.replace(" ", "")
    if not _PINCODE.fullmatch(value):
        raise PydanticCustomError("pincode", "Enter a 6-digit Indian pincode, for example 560001.")
    return value


def _mobile(value: str) -> str:
    """Any common way of writing an Indian mobile number, stored as +91XXXXXXXXXX."""
    match = _MOBILE.fullmatch(_PHONE_SEPARATORS.sub("", value))
    if match is None:
        raise PydanticCustomError("phone", "Enter a 10-digit Indian mobile number, for example 98765 43210.")
    return "+91" + match.group(1)


def _blank_is_none(value: str | None) -> str | None:
    return value or None


Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
Line = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=120)]
OptionalLine = Annotated[
    str | None, StringConstraints(strip_whitespace=True, max_length=120), AfterValidator(_blank_is_none)
]
City = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=60)]
Pincode = Annotated[str, StringConstraints(strip_whitespace=True, max_length=10), AfterValidator(_pincode)]
MobileNumber = Annotated[str, StringConstraints(strip_whitespace=True, max_length=20), AfterValidator(_mobile)]


class DeliveryAddress(BaseModel):
    """Where an order goes and whom the rider calls."""

    model_config = ConfigDict(extra="forbid")

    name: Name = Field(description="Who receives the order")
    phone: MobileNumber = Field(description="A 10-digit Indian mobile number; stored as +91XXXXXXXXXX")
    line1: Line = Field(description="House or flat number, building, street")
    line2: OptionalLine = None
    landmark: OptionalLine = None
    city: City
    pincode: Pincode = Field(description="6 digits, for example 560001")

    def one_line(self) -> str:
        parts = [self.line1, self.line2, self.landmark, self.city, self.pincode]
        return ", ".join(part for part in parts if part)


class ShippingAddress(BaseModel):
    """An address as an order stores and shows it. Orders placed before addresses had a
    name and a phone lack those, so this output model does not insist on them."""

    name: str | None = None
    phone: str | None = None
    line1: str
    line2: str | None = None
    landmark: str | None = None
    city: str
    pincode: str
