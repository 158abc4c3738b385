"""Pure domain logic, without servers."""

from __future__ import annotations

from decimal import Decimal
from itertools import product

import pytest

from winkit.catalog.products import slugify
from winkit.core.money import to_paise, to_rupees
from winkit.core.observability import incoming_request_id
from winkit.core.order_status import OrderStatus
from winkit.delivery.lifecycle import TransitionRefused, allowed_next, next_status

S = OrderStatus
# Every (from, to) pair that may happen; everything else must be refused.
ALLOWED = {
    (S.PLACED, S.CONFIRMED),
    (S.CONFIRMED, S.PACKED),
    (S.PACKED, S.OUT_FOR_DELIVERY),
    (S.OUT_FOR_DELIVERY, S.DELIVERED),
    (S.PLACED, S.CANCELLED),
    (S.CONFIRMED, S.CANCELLED),
    (S.PACKED, S.CANCELLED),
}


@pytest.mark.parametrize(("current", "requested"), list(product(OrderStatus, OrderStatus)))
def test_full_transition_table(current, requested):
    if (current, requested) in ALLOWED:
        assert next_status(current, requested) == requested
    else:
        with pytest.raises(TransitionRefused) as refused:
            next_status(current, requested)
        assert sorted(refused.value.allowed) == sorted(to for (frm, to) in ALLOWED if frm == current)


@pytest.mark.parametrize(
    ("current", "expected"),
    [
        (S.PLACED, S.CONFIRMED),
        (S.CONFIRMED, S.PACKED),
        (S.PACKED, S.OUT_FOR_DELIVERY),
        (S.OUT_FOR_DELIVERY, S.DELIVERED),
    ],
)
def test_no_body_advances_one_step(current, expected):
    assert next_status(current, None) == expected


@pytest.mark.parametrize("final", [S.DELIVERED, S.CANCELLED])
def test_final_states_go_nowhere(final):
    assert allowed_next(final) == []
    with pytest.raises(TransitionRefused):
        next_status(final, None)


def test_money_round_trips_without_floats():
    assert to_paise(Decimal("27.25")) == 2725
    assert to_rupees(2725) == Decimal("27.25")
    assert sum(to_paise(Decimal("0.10")) for _ in range(3)) == 30


def test_slugs_keep_letters_and_digits():
    assert slugify("Amul Taaza & Co.") == "amul-taaza-co"


def test_request_ids_are_kept_only_when_safe():
    assert incoming_request_id("abc-123") == "abc-123"
    assert incoming_request_id("x" * 200) != "x" * 200
    assert len(incoming_request_id(None)) == 32
