"""The app's logic, without a screen: what each view shows, which buttons work, and what
an error says. Views only draw these; tests check them without a browser.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from enum import StrEnum

from winkit.app.client import ApiError, ApiUnreachable
from winkit.app.models import Address, Cart, CartLine, DeliveryStatus, OpenDelivery, Order, Product

# Winkit delivers in India: times are shown in IST (UTC+5:30, no daylight saving).
IST = timezone(timedelta(hours=5, minutes=30), "IST")
MAX_PER_LINE = 20
LOW_STOCK = 10


def rupees(amount: Decimal | int) -> str:
    """₹49, ₹49.50, ₹1,249.00: whole rupees without paise, otherwise two decimals."""
    value = Decimal(amount)
    if value == value.to_integral_value():
        return f"₹{value:,.0f}"
    return f"₹{value:,.2f}"


def clock(moment: datetime) -> str:
    return moment.astimezone(IST).strftime("%I:%M %p").lstrip("0")


# --- errors -------------------------------------------------------------------------


class NoticeKind(StrEnum):
    INFO = "info"
    ERROR = "error"
    OFFLINE = "offline"  # a banner with Retry
    SIGNED_OUT = "signed-out"  # back to sign-in; the cart is kept on the server
    OUT_OF_STOCK = "out-of-stock"  # offer to fix the cart


@dataclass(frozen=True)
class Notice:
    kind: NoticeKind
    text: str
    # For out-of-stock: product id -> how many can still be had.
    available: dict[str, int] = field(default_factory=dict)


def _field_errors(error: ApiError) -> list[str]:
    shown = []
    for item in error.extensions.get("errors", []):
        where = [str(part) for part in item.get("loc", []) if part not in ("body", "query", "path")]
        label = where[-1].replace("_", " ") if where else ""
        message = str(item.get("msg", "")).removeprefix("Value error, ")
        shown.append(f"{label.capitalize()}: {message}" if label else message)
    return shown


def _short_items(error: ApiError) -> Notice:
    lines, available = [], {}
    for item in error.extensions.get("short_items", []):
        left = int(item.get("available", 0))
        available[str(item.get("product_id"))] = left
        name = item.get("name", "An item")
        lines.append(f"{name} is out of stock." if left == 0 else f"Only {left} of {name} left.")
    return Notice(NoticeKind.OUT_OF_STOCK, " ".join(lines) or error.detail, available)


def describe(error: Exception) -> Notice:
    """Words a shopper or a store worker understands, for anything a call can raise."""
    if isinstance(error, ApiUnreachable):
        return Notice(NoticeKind.OFFLINE, "Winkit can't be reached right now. Check your connection and retry.")
    if not isinstance(error, ApiError):
        return Notice(NoticeKind.ERROR, "Sorry, something went wrong in the app. Please try again.")
    if error.status == 401:
        return Notice(NoticeKind.SIGNED_OUT, "Your session has ended. Sign in again; your cart is saved.")
    if error.status == 429:
        wait = f"{error.retry_after} seconds" if error.retry_after else "a moment"
        return Notice(NoticeKind.ERROR, f"Too many tries. Please wait {wait} and try again.")
    if error.status == 409 and error.extensions.get("short_items"):
        return _short_items(error)
    if error.status == 409 and "available" in error.extensions:
        available = {str(error.extensions.get("product_id")): int(error.extensions["available"])}
        return Notice(NoticeKind.OUT_OF_STOCK, error.detail, available)
    if error.status == 422 and error.extensions.get("errors"):
        return Notice(NoticeKind.ERROR, " ".join(_field_errors(error)))
    if error.status < 500 and error.detail:
        return Notice(NoticeKind.ERROR, error.detail)
    reference = f" (reference {error.request_id})" if error.request_id else ""
    return Notice(NoticeKind.ERROR, f"Sorry, something went wrong on our side{reference}. Please try again.")


# --- catalog ------------------------------------------------------------------------


@dataclass(frozen=True)
class ProductCard:
    product: Product
    in_cart: int

    @property
    def price(self) -> str:
        return rupees(self.product.price)

    @property
    def stock_badge(self) -> str | None:
        stock = self.product.stock
        if stock == 0:
            return "Out of stock"
        return f"Only {stock} left" if stock <= 5 else None

    @property
    def can_add(self) -> bool:
        return self.product.stock > self.in_cart and self.in_cart < MAX_PER_LINE


# --- cart ---------------------------------------------------------------------------


@dataclass(frozen=True)
class LineView:
    line: CartLine

    @property
    def can_increase(self) -> bool:
        return self.line.quantity < MAX_PER_LINE

    @property
    def decrease_removes(self) -> bool:
        return self.line.quantity == 1


@dataclass(frozen=True)
class CartView:
    cart: Cart

    @property
    def lines(self) -> list[LineView]:
        return [LineView(line) for line in self.cart.items]

    @property
    def is_empty(self) -> bool:
        return not self.cart.items

    @property
    def summary(self) -> list[tuple[str, str]]:
        fee = "Free" if self.cart.delivery_fee == 0 and not self.is_empty else rupees(self.cart.delivery_fee)
        return [("Items", rupees(self.cart.subtotal)), ("Delivery", fee), ("To pay", rupees(self.cart.total))]

    @property
    def free_delivery_hint(self) -> str | None:
        threshold = self.cart.free_delivery_from
        if threshold is None or self.is_empty or self.cart.subtotal >= threshold:
            return None
        return f"Add {rupees(threshold - self.cart.subtotal)} more for free delivery"

    def quantity_of(self, product_id: str) -> int:
        return next((line.quantity for line in self.cart.items if line.product_id == product_id), 0)

    def fixes(self, available: dict[str, int]) -> list[tuple[str, int]]:
        """What to take off each short line so the cart fits the stock: (product, quantity)."""
        return [
            (line.product_id, line.quantity - available[line.product_id])
            for line in self.cart.items
            if line.product_id in available and line.quantity > available[line.product_id]
        ]


# --- checkout -----------------------------------------------------------------------

ADDRESS_FIELDS = ("name", "phone", "line1", "line2", "landmark", "city", "pincode")
ADDRESS_LABELS = {
    "name": "Full name",
    "phone": "Mobile number",
    "line1": "House, building, street",
    "line2": "Area (optional)",
    "landmark": "Landmark (optional)",
    "city": "City",
    "pincode": "Pincode",
}


def address_form_errors(values: dict[str, str]) -> dict[str, str]:
    """Field -> message for a new address, checked as the API will check it."""
    errors = {}
    for name in ("name", "line1", "city"):
        if not values.get(name, "").strip():
            errors[name] = f"Enter the {ADDRESS_LABELS[name].lower()}."
    digits = "".join(ch for ch in values.get("phone", "") if ch.isdigit())
    if not (len(digits) == 10 and digits[0] in "6789") and not (
        len(digits) == 12 and digits.startswith("91") and digits[2] in "6789"
    ):
        errors["phone"] = "Enter a 10-digit Indian mobile number, for example 98765 43210."
    pincode = values.get("pincode", "").replace(" ", "")
    if not (len(pincode) == 6 and pincode.isdigit() and pincode[0] != "0"):
        errors["pincode"] = "Enter a 6-digit Indian pincode, for example 560001."
    return errors


@dataclass
class Checkout:
    """One checkout attempt: its address and the Idempotency-Key its retries share."""

    saved: list[Address]
    key: str
    chosen: str | None = None  # a saved address id; None = a new address
    placing: bool = False

    def __post_init__(self) -> None:
        default = next((a for a in self.saved if a.is_default), self.saved[0] if self.saved else None)
        self.chosen = default.id if default else None

    @property
    def destination(self) -> Address | None:
        return next((a for a in self.saved if a.id == self.chosen), None)

    def can_place(self, cart: CartView, new_address_ok: bool) -> bool:
        return not cart.is_empty and not self.placing and (self.destination is not None or new_address_ok)


# --- tracking -----------------------------------------------------------------------

STEP_LABELS = {
    "PLACED": "Order placed",
    "CONFIRMED": "Confirmed by the store",
    "PACKED": "Packed",
    "OUT_FOR_DELIVERY": "On the way",
    "DELIVERED": "Delivered",
    "CANCELLED": "Cancelled",
}
FLOW = ("PLACED", "CONFIRMED", "PACKED", "OUT_FOR_DELIVERY", "DELIVERED")
SHOPPER_CANCELLABLE = frozenset({"PLACED", "CONFIRMED"})


@dataclass(frozen=True)
class Step:
    label: str
    done: bool
    current: bool
    at: str | None

    @property
    def spoken(self) -> str:
        """What a screen reader says of this step: the label alone does not say if it happened."""
        if self.current:
            return f"{self.label}: now" + (f", since {self.at}" if self.at else "")
        return f"{self.label}: done at {self.at}" if self.done and self.at else f"{self.label}: not yet"


@dataclass(frozen=True)
class Tracking:
    order: Order
    delivery: DeliveryStatus | None

    @property
    def status(self) -> str:
        return self.delivery.status if self.delivery else self.order.status

    @property
    def headline(self) -> str:
        return STEP_LABELS.get(self.status, self.status)

    @property
    def steps(self) -> list[Step]:
        reached = {entry.status: clock(entry.at) for entry in (self.delivery.history if self.delivery else [])}
        # A cancelled order shows how far it got, then the cancellation.
        cancelled = self.status == "CANCELLED"
        flow = [s for s in FLOW if s in reached] + ["CANCELLED"] if cancelled else list(FLOW)
        return [Step(STEP_LABELS[s], s in reached or s == self.status, s == self.status, reached.get(s)) for s in flow]

    def promise(self, now: datetime | None = None) -> str | None:
        promised = (self.delivery.promised_at if self.delivery else None) or self.order.promised_at
        if promised is None or self.status == "CANCELLED":
            return None
        if self.status == "DELIVERED":
            history = self.delivery.history if self.delivery else []
            delivered = next((e.at for e in reversed(history) if e.status == "DELIVERED"), None)
            if delivered is None:
                return "Delivered"
            return f"Delivered at {clock(delivered)}" + (" — on time" if delivered <= promised else "")
        minutes = int((promised - (now or datetime.now(UTC))).total_seconds() // 60)
        if minutes < 0:
            return f"Running late: promised by {clock(promised)}"
        return f"Arriving by {clock(promised)} (in {max(minutes, 1)} min)"

    @property
    def can_cancel(self) -> bool:
        return self.status in SHOPPER_CANCELLABLE

    @property
    def is_final(self) -> bool:
        return self.status in ("DELIVERED", "CANCELLED")


# --- staff --------------------------------------------------------------------------

ACTION_LABELS = {
    "CONFIRMED": "Confirm",
    "PACKED": "Mark packed",
    "OUT_FOR_DELIVERY": "Hand to rider",
    "DELIVERED": "Mark delivered",
    "CANCELLED": "Cancel order",
}


@dataclass
class Board:
    """The live queue of open orders, oldest first."""

    deliveries: dict[str, OpenDelivery] = field(default_factory=dict)

    def apply(self, update: list[OpenDelivery] | OpenDelivery) -> None:
        if isinstance(update, list):
            self.deliveries = {d.order_id: d for d in update}
        elif update.status in ("DELIVERED", "CANCELLED"):
            self.deliveries.pop(update.order_id, None)
        else:
            self.deliveries[update.order_id] = update

    @property
    def queue(self) -> list[OpenDelivery]:
        oldest = datetime.min.replace(tzinfo=UTC)
        return sorted(self.deliveries.values(), key=lambda d: (d.placed_at or oldest, d.order_id))

    @staticmethod
    def actions(delivery: OpenDelivery) -> list[tuple[str, str]]:
        """(button label, target status) for exactly the transitions the API allows."""
        return [(ACTION_LABELS[status], status) for status in delivery.allowed_next]


def low_stock(products: Iterable[Product], threshold: int = LOW_STOCK) -> list[Product]:
    return sorted((p for p in products if p.stock <= threshold), key=lambda p: (p.stock, p.name))
