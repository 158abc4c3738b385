"""Money: integer paise inside, a JSON number with at most two decimals on the wire."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated

from pydantic import Field, PlainSerializer

CURRENCY = "INR"

# Shown to clients as a number (e.g. 49.5) rather than pydantic's default string.
Rupees = Annotated[Decimal, PlainSerializer(float, return_type=float, when_used="json")]
RupeesInput = Annotated[Decimal, Field(gt=0, le=Decimal("1000000"), decimal_places=2)]


def to_rupees(paise: int) -> Decimal:
    return (Decimal(paise) / 100).quantize(Decimal("0.01"))


def to_paise(rupees: Decimal) -> int:
    return int((rupees * 100).to_integral_exact())
