"""Cart and order arithmetic, in integer paise."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from pydantic import BaseModel, ConfigDict


class FeeRule(BaseModel):
    model_config = ConfigDict(frozen=True)

    fee_paise: int
    free_from_paise: int

    def fee(self, subtotal_paise: int) -> int:
        """A delivery fee under the threshold; nothing for an empty cart or above it."""
        if subtotal_paise == 0 or subtotal_paise >= self.free_from_paise:
            return 0
        return self.fee_paise


class Totals(BaseModel):
    model_config = ConfigDict(frozen=True)

    subtotal_paise: int
    delivery_fee_paise: int

    @property
    def total_paise(self) -> int:
        return self.subtotal_paise + self.delivery_fee_paise


class PricedLine(Protocol):
    """A line of a cart or an order: so many of a product at a price."""

    @property
    def price_paise(self) -> int: ...

    @property
    def quantity(self) -> int: ...


def line_total(price_paise: int, quantity: int) -> int:
    return price_paise * quantity


def totals(lines: Sequence[PricedLine], rule: FeeRule) -> Totals:
    subtotal = sum(line_total(line.price_paise, line.quantity) for line in lines)
    return Totals(subtotal_paise=subtotal, delivery_fee_paise=rule.fee(subtotal))
