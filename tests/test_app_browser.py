"""The app in a real headless Chromium: a shopper and a store worker, live, end to end.

The app server (Flet), the gateway and the four services run on real sockets; Chromium
(Debian's package, driven by Playwright) clicks through the app as people would, finding
controls by role and name through Flutter's semantics tree.
"""

from __future__ import annotations

import json
import re
import shutil
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import jwt
import pytest
from harness import eventually, latest_code, new_product, unique_email
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from winkit.core.keys import load_signing_key, public_jwk

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="headless Chromium is not installed (apt-get install chromium)"
)

# Bounds on waiting for the app to react, never expectations of speed.
UI_TIMEOUT_MS = 30_000
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 800}


@pytest.fixture(scope="module")
def playwright() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as started:
        yield started


@pytest.fixture(scope="module")
def browser(playwright: Any) -> Iterator[Any]:
    # Playwright's own flags suit a machine without a screen, a sandbox or the internet
    # (headless, no sandbox, no background networking, no first-run or sync).
    chromium = playwright.chromium.launch(executable_path=CHROMIUM)
    yield chromium
    chromium.close()


class Screen:
    """One browser tab on the app, driven through its semantics tree."""

    def __init__(self, browser: Any, base_url: str, viewport: dict[str, int]) -> None:
        self.context = browser.new_context(viewport=viewport, base_url=base_url)
        self.page = self.context.new_page()
        OPEN_SCREENS.append(self)

    def open(self, path: str) -> Screen:
        self.page.goto(path)
        placeholder = self.page.locator("flt-semantics-placeholder")
        placeholder.wait_for(state="attached", timeout=UI_TIMEOUT_MS)
        # Flutter builds its accessibility tree once asked to: then roles and names exist.
        placeholder.dispatch_event("click")
        return self

    def button(self, name: str, exact: bool = True) -> Any:
        return self.page.get_by_role("button", name=name, exact=exact)

    def field(self, label: str) -> Any:
        return self.page.get_by_role("textbox", name=label, exact=True)

    def fill(self, label: str, value: str) -> None:
        """Type into a field key by key, as a person does (Flutter hears keystrokes, not a DOM
        value being set). A keystroke Flutter drops while busy is caught and the field retyped."""
        field = self.field(label)
        field.wait_for(timeout=UI_TIMEOUT_MS)
        element = field.element_handle()
        for _ in range(3):
            field.click()
            # Keys typed before Flutter has moved focus into the field would be lost.
            self.page.wait_for_function("el => document.activeElement === el", arg=element, timeout=UI_TIMEOUT_MS)
            self.page.keyboard.press("Control+A")
            self.page.keyboard.type(value, delay=10)
            try:
                self.page.wait_for_function("([el, v]) => el.value === v", arg=[element, value], timeout=5_000)
                return
            except PlaywrightTimeout:
                continue
        raise AssertionError(f"could not type {value!r} into {label!r}")

    def click(self, name: str, exact: bool = True) -> None:
        button = self.button(name, exact)
        button.wait_for(timeout=UI_TIMEOUT_MS)
        button.click()

    def click_until(self, control: Any, shown: Any) -> None:
        """Click ``control`` (a locator) until ``shown`` appears. A view that is redrawing
        (live updates, results arriving) can lose a click: the control is still there and
        nothing happened, so it is clicked again; once it is gone, the click was taken."""
        control.wait_for(timeout=UI_TIMEOUT_MS)
        for _ in range(3):
            control.click()
            try:
                shown.wait_for(timeout=10_000)
                return
            except PlaywrightTimeout:
                if not control.is_visible():
                    break
        shown.wait_for(timeout=UI_TIMEOUT_MS)

    def tab(self, name: str) -> Any:
        return self.page.get_by_role("tab", name=re.compile(f"{name}$"))

    def shows(self, text: str) -> Any:
        """Text on screen: Flutter puts it in an element's text or in its aria-label."""
        quoted = json.dumps(text, ensure_ascii=False)
        return self.page.locator(f"flt-semantics-host :is([aria-label*={quoted}], :text({quoted}))").first

    def wait_for_text(self, text: str) -> None:
        self.shows(text).wait_for(timeout=UI_TIMEOUT_MS)

    def close(self) -> None:
        self.context.close()
        OPEN_SCREENS.remove(self)


OPEN_SCREENS: list[Screen] = []


@pytest.fixture(autouse=True)
def screenshots_on_failure(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[None]:
    """A failed test leaves a picture of every screen it had open, named in its report."""
    yield
    failed = getattr(request.node, "report_call", None)
    for index, screen in enumerate(list(OPEN_SCREENS)):
        if failed is not None and failed.failed:
            path = tmp_path / f"screen-{index}.png"
            screen.page.screenshot(path=path)
            print(f"screenshot: {path}")
        screen.close()


def sign_up(screen: Screen, users: httpx.Client, name: str) -> str:
    email = unique_email("app")
    screen.click("New to Winkit? Create an account")
    screen.fill("Your name", name)
    screen.fill("Email", email)
    screen.click("Email me a code")
    screen.wait_for_text("We sent a code")
    screen.fill("6-digit code from your email", latest_code(users, email))
    screen.fill("Choose a password", "correct horse battery")
    screen.click("Create account")
    return email


def fill_address(screen: Screen, name: str, phone: str, street: str, city: str, pincode: str) -> None:
    labels = ("Full name", "Mobile number", "House, building, street", "City", "Pincode")
    for label, value in zip(labels, (name, phone, street, city, pincode), strict=True):
        screen.fill(label, value)


def sign_in(screen: Screen, email: str, password: str) -> None:
    screen.fill("Email", email)
    screen.fill("Password", password)
    screen.click("Sign in")


def test_a_new_shopper_orders_and_watches_staff_deliver_it_live(app_stack, browser, stack, catalog, users):
    staff_headers = stack.staff_headers()
    product = new_product(catalog, staff_headers, stock=10, price=30.0)
    name = product["name"]

    shopper = Screen(browser, app_stack.url, PHONE).open("/")
    shopper.fill("Search groceries", name)
    shopper.page.keyboard.press("Enter")
    # The results replace the grid; a click while they are drawn may land on the old one.
    shopper.wait_for_text(f'Results for "{name}"')
    # Browsing needs no account; adding asks the shopper to sign in first.
    shopper.click_until(shopper.button(f"Add {name} to cart"), shopper.button("New to Winkit? Create an account"))
    sign_up(shopper, users, "Meera Shopper")
    shopper.click(f"One more {name}")
    shopper.wait_for_text("2 in cart")

    shopper.click_until(shopper.tab("Cart"), shopper.shows("Add ₹139 more for free delivery"))
    shopper.click("Checkout · ₹85")
    fill_address(shopper, "Meera Shopper", "98765 43210", "4 Residency Road", "Bengaluru", "560025")
    shopper.click("Place order · ₹85")
    shopper.wait_for_text("Order placed!")
    shopper.wait_for_text("Arriving by")
    order_id = re.search(r"/orders/([0-9a-f]{24})", shopper.page.url).group(1)  # type: ignore[union-attr]
    number = f"#{order_id[-6:]}"

    board = Screen(browser, app_stack.url, DESKTOP).open("/login")
    sign_in(board, "staff@winkit.local", "winkit-staff-dev")
    board.wait_for_text("Operations board")
    for action, status in [
        ("Confirm", "Confirmed by the store"),
        ("Mark packed", "Packed"),
        ("Hand to rider", "On the way"),
        ("Mark delivered", "Delivered"),
    ]:
        # The board redraws whenever any order moves: a click may need repeating.
        board.click_until(board.button(f"{action} order {number}"), shopper.shows(f"Order status: {status}"))
        # The shopper's tracking screen moved by itself: no reload, no click.
        shopper.wait_for_text(f"{status}: now")
    shopper.wait_for_text("Delivered at")
    board.shows(number).wait_for(state="detached", timeout=UI_TIMEOUT_MS)
    assert catalog.get(f"/products/{product['id']}").json()["stock"] == 8
    shopper.close()
    board.close()


def test_an_out_of_stock_checkout_says_which_item_and_offers_a_fix(app_stack, browser, stack, catalog, orders):
    staff_headers = stack.staff_headers()
    product = new_product(catalog, staff_headers, stock=5, price=60.0)
    customer = stack.customer()
    orders.post("/cart/add", json={"product_id": product["id"], "quantity": 3}, headers=customer.headers)
    screen = Screen(browser, app_stack.url, DESKTOP).open("/login")
    sign_in(screen, customer.email, customer.password)
    # Signed in, the app draws the catalog; a tab clicked before it is drawn may be lost.
    screen.wait_for_text("All products")
    screen.click_until(screen.tab("Cart"), screen.button("Checkout · ₹205"))
    screen.click("Checkout · ₹205")
    fill_address(screen, "Asha", "9876543210", "1 Lake View", "Pune", "411001")
    catalog.patch(f"/products/{product['id']}", json={"stock": 1}, headers=staff_headers)
    screen.click("Place order · ₹205")
    screen.wait_for_text(f"Only 1 of {product['name']} left.")
    screen.click("Fix my cart")
    screen.wait_for_text("Your cart now matches what is in stock.")
    cart = orders.get("/cart", headers=customer.headers).json()
    assert [(line["product_id"], line["quantity"]) for line in cart["items"]] == [(product["id"], 1)]
    screen.close()


def expired_token(settings: Any, user_id: str) -> str:
    key = load_signing_key(settings)
    now = int(time.time())
    claims = {
        "sub": user_id,
        "role": "customer",
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
        "iat": now - 7200,
        "exp": now - 3600,
        "jti": uuid.uuid4().hex,
    }
    return jwt.encode(claims, key, algorithm="EdDSA", headers={"kid": public_jwk(key.public_key())["kid"]})


def test_an_expired_session_returns_to_sign_in_and_keeps_the_cart(app_stack, browser, stack, catalog, orders):
    product = new_product(catalog, stack.staff_headers(), stock=5)
    customer = stack.customer()
    orders.post("/cart/add", json={"product_id": product["id"]}, headers=customer.headers)
    session = {"access_token": expired_token(stack.settings, customer.user_id), "user_id": customer.user_id}
    session |= {"role": "customer", "expires_in": 3600}
    screen = Screen(browser, app_stack.url, PHONE)
    # What the app stored in the browser when this person last signed in, an hour ago.
    screen.context.add_init_script(
        f"localStorage.setItem('flutter.winkit.session', {json.dumps(json.dumps(json.dumps(session)))});"
    )
    screen.open("/orders")
    screen.wait_for_text("Your session has ended")
    screen.field("Email").wait_for(timeout=UI_TIMEOUT_MS)
    sign_in(screen, customer.email, customer.password)
    screen.wait_for_text("No orders yet")
    assert orders.get("/cart", headers=customer.headers).json()["items"][0]["product_id"] == product["id"]
    screen.close()


def visit(page: Any, url: str) -> int:
    """Bytes on the wire (headers and bodies, as sent) until the app's first view is drawn."""
    received: list[int] = []
    cdp = page.context.new_cdp_session(page)
    cdp.send("Network.enable")
    cdp.on("Network.loadingFinished", lambda event: received.append(int(event["encodedDataLength"])))
    page.goto(url)
    page.locator("flt-semantics-placeholder").dispatch_event("click")
    page.get_by_role("textbox", name="Search groceries").wait_for(timeout=UI_TIMEOUT_MS)
    cdp.detach()
    return sum(received)


def test_a_first_visit_is_compressed_and_a_repeat_visit_revalidates(app_stack, playwright, tmp_path):
    assets = app_stack.app.app  # the app server's outermost layer serves the compressed build
    with playwright.chromium.launch(executable_path=CHROMIUM) as warm_up:
        visit(warm_up.new_page(), app_stack.url)
    # The first request of each file compresses it quickly; the best level follows in the background.
    eventually(lambda: assets.status()["upgrading"] == 0, timeout=600)
    profile = playwright.chromium.launch_persistent_context(tmp_path / "profile", executable_path=CHROMIUM)
    first = visit(profile.new_page(), app_stack.url)
    repeat = visit(profile.new_page(), app_stack.url)
    profile.close()
    # The raw Flutter web build is about 14 MB.
    assert first <= 5_000_000, f"a first visit transferred {first:,} bytes"
    assert repeat <= 100_000, f"a repeat visit transferred {repeat:,} bytes"
