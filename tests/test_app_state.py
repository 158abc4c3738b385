"""The app's view-state logic, without a browser or a server: what each screen shows."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from winkit.app.client import ApiError, ApiUnreachable
from winkit.app.models import Address, Cart, CartLine, DeliveryStatus, HistoryEntry, OpenDelivery, Order, Product
from winkit.app.state import (
    Board,
    CartView,
    Checkout,
    NoticeKind,
    ProductCard,
    Tracking,
    address_form_errors,
    clock,
    describe,
    low_stock,
    rupees,
)

T0 = datetime(2026, 11, 26, 8, 0, tzinfo=UTC)  # 1:30 PM in India


def product(stock: int = 10, price: str = "49.5", name: str = "Milk") -> Product:
    return Product(
        id=f"p-{name}", name=name, category="Dairy", price=Decimal(price), unit="1 l", stock=stock, image_url="x"
    )


def line(product_id: str, quantity: int, price: str = "30") -> CartLine:
    unit = Decimal(price)
    return CartLine(product_id=product_id, name=product_id, price=unit, quantity=quantity, line_total=unit * quantity)


def cart(*lines: CartLine, fee: str = "25", free_from: str = "199") -> Cart:
    subtotal = sum((item.line_total for item in lines), Decimal(0))
    delivery = Decimal(fee) if lines and subtotal < Decimal(free_from) else Decimal(0)
    return Cart(
        items=list(lines),
        subtotal=subtotal,
        delivery_fee=delivery,
        total=subtotal + delivery,
        free_delivery_from=Decimal(free_from),
    )


def order(status: str = "PLACED", promised: datetime | None = T0 + timedelta(minutes=10)) -> Order:
    return Order(
        order_id="0" * 18 + "abc123",
        status=status,
        items=[line("milk", 2)],
        subtotal=Decimal(60),
        delivery_fee=Decimal(25),
        total=Decimal(85),
        created_at=T0,
        promised_at=promised,
    )


def delivery(*statuses: str, allowed: list[str] | None = None) -> DeliveryStatus:
    history = [HistoryEntry(status=s, at=T0 + timedelta(minutes=i), by="staff") for i, s in enumerate(statuses)]
    return DeliveryStatus(
        order_id="x", status=statuses[-1], history=history, allowed_next=allowed or [], promised_at=order().promised_at
    )


@pytest.mark.parametrize(
    ("amount", "shown"),
    [(Decimal("49"), "₹49"), (Decimal("49.5"), "₹49.50"), (Decimal("1249"), "₹1,249"), (0, "₹0")],
)
def test_money_is_shown_in_rupees(amount, shown):
    assert rupees(amount) == shown


def test_times_are_shown_in_india():
    assert clock(T0) == "1:30 PM"


# --- errors become words ------------------------------------------------------------


def test_an_unreachable_api_is_an_offline_banner():
    notice = describe(ApiUnreachable("refused"))
    assert notice.kind == NoticeKind.OFFLINE
    assert "retry" in notice.text.lower()


def test_an_ended_session_sends_the_person_to_sign_in_and_keeps_the_cart():
    notice = describe(ApiError(401, "Unauthorized", "The bearer token has expired."))
    assert notice.kind == NoticeKind.SIGNED_OUT
    assert "cart is saved" in notice.text


def test_too_many_requests_says_how_long_to_wait():
    assert "wait 42 seconds" in describe(ApiError(429, "Too Many Requests", retry_after=42)).text
    assert "wait a moment" in describe(ApiError(429, "Too Many Requests")).text


def test_out_of_stock_names_each_item_and_what_is_left():
    short = [
        {"product_id": "a", "name": "Amul Milk", "requested": 3, "available": 1},
        {"product_id": "b", "name": "Bread", "requested": 1, "available": 0},
    ]
    notice = describe(ApiError(409, "Conflict", "Not enough stock", extensions={"short_items": short}))
    assert notice.kind == NoticeKind.OUT_OF_STOCK
    assert notice.text == "Only 1 of Amul Milk left. Bread is out of stock."
    assert notice.available == {"a": 1, "b": 0}


def test_adding_past_the_stock_is_out_of_stock_too():
    error = ApiError(409, "Conflict", "Only 2 of Eggs in stock.", extensions={"product_id": "e", "available": 2})
    notice = describe(error)
    assert notice.kind == NoticeKind.OUT_OF_STOCK
    assert notice.available == {"e": 2}


def test_invalid_input_lists_each_field_message():
    errors = [{"loc": ["body", "address", "pincode"], "msg": "Enter a 6-digit Indian pincode, for example 560001."}]
    notice = describe(ApiError(422, "Unprocessable Content", extensions={"errors": errors}))
    assert notice.text == "Pincode: Enter a 6-digit Indian pincode, for example 560001."


def test_anything_else_is_an_apology_with_the_request_id():
    notice = describe(ApiError(500, "Internal Server Error", request_id="req-42"))
    assert notice.kind == NoticeKind.ERROR
    assert "req-42" in notice.text
    assert "Sorry" in notice.text
    assert "Sorry" in describe(RuntimeError("bug")).text


def test_a_refusal_with_a_reason_shows_the_reason():
    assert describe(ApiError(409, "Conflict", "The cart is empty.")).text == "The cart is empty."


# --- catalog and cart ---------------------------------------------------------------


def test_product_cards_badge_low_and_no_stock_and_stop_adding_at_the_limit():
    assert ProductCard(product(stock=0), 0).stock_badge == "Out of stock"
    assert not ProductCard(product(stock=0), 0).can_add
    assert ProductCard(product(stock=3), 0).stock_badge == "Only 3 left"
    assert ProductCard(product(stock=50), 0).stock_badge is None
    assert not ProductCard(product(stock=3), 3).can_add
    assert not ProductCard(product(stock=50), 20).can_add
    assert ProductCard(product(stock=50, price="49.5"), 1).price == "₹49.50"


def test_the_cart_shows_its_bill_and_how_far_free_delivery_is():
    view = CartView(cart(line("milk", 2)))
    assert view.summary == [("Items", "₹60"), ("Delivery", "₹25"), ("To pay", "₹85")]
    assert view.free_delivery_hint == "Add ₹139 more for free delivery"
    free = CartView(cart(line("rice", 1, price="199")))
    assert free.free_delivery_hint is None
    assert ("Delivery", "Free") in free.summary
    assert CartView(cart()).is_empty
    assert CartView(cart()).free_delivery_hint is None


def test_steppers_stop_at_twenty_and_the_last_minus_removes_the_line():
    one, twenty = CartView(cart(line("a", 1), line("b", 20))).lines
    assert one.decrease_removes
    assert one.can_increase
    assert not twenty.can_increase
    assert not twenty.decrease_removes


def test_fixing_the_cart_takes_off_exactly_what_is_short():
    view = CartView(cart(line("a", 3), line("b", 1), line("c", 2)))
    assert view.fixes({"a": 1, "b": 0, "c": 5}) == [("a", 2), ("b", 1)]
    assert view.quantity_of("c") == 2
    assert view.quantity_of("z") == 0


# --- checkout -----------------------------------------------------------------------


def test_a_new_address_is_checked_as_the_api_will():
    good = {"name": "Asha", "phone": "+91 98765 43210", "line1": "12 MG Road", "city": "Bengaluru", "pincode": "560001"}
    assert address_form_errors(good) == {}
    assert address_form_errors({**good, "phone": "919876543210"}) == {}
    errors = address_form_errors({**good, "phone": "12345", "pincode": "060001", "city": " "})
    assert set(errors) == {"phone", "pincode", "city"}
    assert errors["pincode"] == "Enter a 6-digit Indian pincode, for example 560001."


def test_checkout_starts_on_the_default_address_and_places_once_at_a_time():
    saved = [
        Address(id="home", name="A", line1="1 X", city="Y", pincode="560001"),
        Address(id="work", name="A", line1="2 X", city="Y", pincode="560001", is_default=True),
    ]
    attempt = Checkout(saved=saved, key="k1")
    assert attempt.chosen == "work"
    assert attempt.destination is not None
    full = CartView(cart(line("a", 1)))
    assert attempt.can_place(full, new_address_ok=False)
    attempt.placing = True
    assert not attempt.can_place(full, new_address_ok=True)
    new = Checkout(saved=[], key="k2")
    assert new.chosen is None
    assert new.destination is None
    assert not new.can_place(full, new_address_ok=False)
    assert new.can_place(full, new_address_ok=True)
    assert not new.can_place(CartView(cart()), new_address_ok=True)


# --- tracking -----------------------------------------------------------------------


def test_the_timeline_marks_what_happened_and_when():
    tracking = Tracking(order(), delivery("PLACED", "CONFIRMED", allowed=["PACKED", "CANCELLED"]))
    steps = tracking.steps
    assert [s.label for s in steps][:2] == ["Order placed", "Confirmed by the store"]
    assert [(s.done, s.current) for s in steps] == [(True, False), (True, True)] + [(False, False)] * 3
    assert steps[1].at == "1:31 PM"
    assert tracking.can_cancel
    assert not tracking.is_final
    # A screen reader hears whether each step happened, not only its name.
    assert [s.spoken for s in steps[:3]] == [
        "Order placed: done at 1:30 PM",
        "Confirmed by the store: now, since 1:31 PM",
        "Packed: not yet",
    ]
    assert tracking.headline == "Confirmed by the store"


def test_the_promise_counts_down_then_admits_lateness_then_says_when_it_came():
    tracking = Tracking(order(), delivery("PLACED"))
    assert tracking.promise(now=T0 + timedelta(minutes=3)) == "Arriving by 1:40 PM (in 7 min)"
    assert tracking.promise(now=T0 + timedelta(minutes=12)) == "Running late: promised by 1:40 PM"
    done = Tracking(order(), delivery("PLACED", "CONFIRMED", "PACKED", "OUT_FOR_DELIVERY", "DELIVERED"))
    assert done.promise() == "Delivered at 1:34 PM — on time"
    assert done.is_final
    assert not done.can_cancel
    assert Tracking(order(promised=None), None).promise() is None


def test_a_cancelled_order_shows_how_far_it_got():
    tracking = Tracking(order(), delivery("PLACED", "CONFIRMED", "CANCELLED"))
    assert [s.label for s in tracking.steps] == ["Order placed", "Confirmed by the store", "Cancelled"]
    assert tracking.promise() is None
    assert tracking.is_final


def test_before_the_delivery_record_exists_the_order_status_shows():
    tracking = Tracking(order("PLACED"), None)
    assert tracking.status == "PLACED"
    assert tracking.steps[0].current
    assert tracking.can_cancel


# --- staff --------------------------------------------------------------------------


def open_delivery(order_id: str, status: str, minutes: int, allowed: list[str]) -> OpenDelivery:
    return OpenDelivery(
        order_id=order_id,
        status=status,
        history=[],
        allowed_next=allowed,
        placed_at=T0 + timedelta(minutes=minutes),
    )


def test_the_board_keeps_open_orders_oldest_first_and_drops_finished_ones():
    board = Board()
    board.apply([open_delivery("b", "PLACED", 5, ["CONFIRMED", "CANCELLED"]), open_delivery("a", "PLACED", 1, [])])
    assert [d.order_id for d in board.queue] == ["a", "b"]
    board.apply(open_delivery("c", "PLACED", 9, ["CONFIRMED", "CANCELLED"]))
    board.apply(open_delivery("a", "DELIVERED", 1, []))
    board.apply(open_delivery("b", "CONFIRMED", 5, ["PACKED", "CANCELLED"]))
    assert [(d.order_id, d.status) for d in board.queue] == [("b", "CONFIRMED"), ("c", "PLACED")]
    board.apply([])
    assert board.queue == []


def test_board_buttons_are_exactly_the_allowed_transitions():
    placed = open_delivery("a", "PLACED", 0, ["CONFIRMED", "CANCELLED"])
    assert Board.actions(placed) == [("Confirm", "CONFIRMED"), ("Cancel order", "CANCELLED")]
    out = open_delivery("a", "OUT_FOR_DELIVERY", 0, ["DELIVERED"])
    assert Board.actions(out) == [("Mark delivered", "DELIVERED")]


def test_low_stock_lists_the_scarcest_first():
    items = [product(stock=12, name="A"), product(stock=0, name="B"), product(stock=4, name="C")]
    assert [p.name for p in low_stock(items)] == ["B", "C"]


# --- what a phone build carries -----------------------------------------------------

APP = Path(__file__).resolve().parents[1] / "src" / "winkit" / "app"
# The web server's own files; `make mobile` leaves them out of the phone build.
WEB_SERVER_ONLY = {"app.py", "assets.py"}


def imported_modules(path: Path) -> set[str]:
    modules = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            modules |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules.add(node.module)
    return modules


def test_the_app_needs_nothing_a_phone_build_does_not_carry():
    mobile = tomllib.loads((APP.parents[2] / "mobile" / "pyproject.toml").read_text())
    carried = {re.split(r"[=<>\[ ]", dependency)[0] for dependency in mobile["project"]["dependencies"]}
    for path in APP.rglob("*.py"):
        if path.name in WEB_SERVER_ONLY and path.parent == APP:
            continue
        for module in imported_modules(path):
            top = module.split(".")[0]
            if top == "winkit":
                own = module.startswith("winkit.app") and module not in {"winkit.app.app", "winkit.app.assets"}
                assert own, f"{path.name} imports {module}, which a phone build does not carry"
            else:
                assert top in sys.stdlib_module_names or top in carried, f"{path.name} imports {module}"


@pytest.mark.parametrize(
    ("path", "tab"),
    [("/", "Shop"), ("/product/abc", "Shop"), ("/cart", "Cart"), ("/checkout", "Cart"), ("/orders/abc", "Orders")],
)
def test_each_page_lights_up_its_tab(path, tab):
    from winkit.app.shell import SHOPPER_TABS

    assert max(SHOPPER_TABS, key=lambda t: t.covers(path)).label == tab
