"""Cart and order arithmetic, in integer paise."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class FeeRule:
    fee_paise: int
    free_from_paise: int

    def fee(self, subtotal_paise: int) -> int:
        """A delivery fee under the threshold; nothing for an empty cart or above it."""
        if subtotal_paise == 0 or subtotal_paise >= self.free_from_paise:
            return 0
        return self.fee_paise


@dataclass(frozen=True, slots=True)
class Totals:
    subtotal_paise: int
    delivery_fee_paise: int

    @property
    def total_paise(self) -> int:
        return self.subtotal_paise + self.delivery_fee_paise


def line_total(price_paise: int, quantity: int) -> int:
    return price_paise * quantity


def totals(lines: list[dict[str, int]], rule: FeeRule) -> Totals:
    subtotal = sum(line_total(line["price_paise"], line["quantity"]) for line in lines)
    return Totals(subtotal, rule.fee(subtotal))
