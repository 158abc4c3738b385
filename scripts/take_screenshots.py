"""Screenshots of the app's main screens, at phone and desktop widths, for the README.

Needs a running Winkit in dev (`make run`) and Debian's Chromium. A new shopper is made
through the API (with the dev outbox's code), fills a cart and orders; staff move one order
along; the app is then photographed signed in as each of them.

Run: .venv/bin/python scripts/take_screenshots.py [--app http://localhost:8080] [--out docs/screenshots]
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
from playwright.sync_api import sync_playwright

PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 800}
ADDRESS = {
    "name": "Meera Iyer",
    "phone": "98450 12345",
    "line1": "14, 2nd Cross, Indiranagar",
    "city": "Bengaluru",
    "pincode": "560038",
    "landmark": "Near the metro",
}


def session(api: httpx.Client, email: str, password: str) -> dict[str, Any]:
    answer = api.post("/users/login", json={"email": email, "password": password})
    answer.raise_for_status()
    return answer.json()


def new_shopper(api: httpx.Client, users_url: str) -> dict[str, Any]:
    email = f"meera-{uuid.uuid4().hex[:6]}@example.com"
    api.post("/users/otp/send", json={"email": email}).raise_for_status()
    body = httpx.get(f"{users_url}/dev/outbox", params={"to": email}).json()[0]["body"]
    code = next(word.rstrip(".") for word in body.split() if word.rstrip(".").isdigit())
    api.post(
        "/users/register", json={"name": "Meera Iyer", "email": email, "password": "winkit-demo-pass", "otp": code}
    )
    return session(api, email, "winkit-demo-pass")


def shoot(
    browser: Any,
    app: str,
    path: str,
    signed_in: dict[str, Any] | None,
    viewport: dict[str, int],
    out: Path,
    theme: str = "light",
) -> None:
    context = browser.new_context(viewport=viewport)
    context.add_init_script(f"localStorage.setItem('flutter.winkit.theme', {json.dumps(json.dumps(theme))});")
    if signed_in:
        stored = json.dumps(json.dumps(json.dumps(signed_in)))
        context.add_init_script(f"localStorage.setItem('flutter.winkit.session', {stored});")
    page = context.new_page()
    page.goto(app + path)
    page.wait_for_function("document.querySelector('flt-glass-pane') !== null", timeout=60_000)
    page.wait_for_load_state("networkidle")
    page.wait_for_timeout(2500)  # images fade in after the first frame
    page.screenshot(path=out)
    context.close()
    print("wrote", out)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--app", default="http://localhost:8080")
    parser.add_argument("--api", default="http://127.0.0.1:8000/api")
    parser.add_argument("--users", default="http://127.0.0.1:8001")
    parser.add_argument("--out", type=Path, default=Path("docs/screenshots"))
    options = parser.parse_args()
    options.out.mkdir(parents=True, exist_ok=True)
    with httpx.Client(base_url=options.api, timeout=30) as api:
        shopper = new_shopper(api, options.users)
        staff = session(api, "staff@winkit.local", "winkit-staff-dev")
        as_shopper = {"Authorization": f"Bearer {shopper['access_token']}"}
        as_staff = {"Authorization": f"Bearer {staff['access_token']}"}
        products = api.get("/catalog/products", params={"q": "milk"}).json()[:2]
        products += api.get("/catalog/products", params={"q": "banana"}).json()[:1]
        for product, quantity in zip(products, (2, 1, 1), strict=False):
            api.post("/orders/cart/add", json={"product_id": product["id"], "quantity": quantity}, headers=as_shopper)
        address = api.post("/users/addresses", json=ADDRESS, headers=as_shopper).json()
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=shutil.which("chromium") or "/usr/bin/chromium")
            shoot(browser, options.app, "/", None, PHONE, options.out / "shop-phone.png")
            shoot(browser, options.app, "/", shopper, DESKTOP, options.out / "shop-desktop.png")
            shoot(browser, options.app, "/cart", shopper, PHONE, options.out / "cart-phone.png")
            shoot(browser, options.app, "/checkout", shopper, DESKTOP, options.out / "checkout-desktop.png")
            order = api.post(
                "/orders/order/create",
                json={"address_id": address["id"]},
                headers={**as_shopper, "Idempotency-Key": uuid.uuid4().hex},
            ).json()
            for product in products[1:]:
                api.post("/orders/cart/add", json={"product_id": product["id"]}, headers=as_shopper)
                api.post("/orders/order/create", json={"address_id": address["id"]}, headers=as_shopper)
            status = f"/delivery/order/{order['order_id']}/status"
            deadline = time.monotonic() + 30
            while api.get(status, headers=as_staff).status_code != 200 and time.monotonic() < deadline:
                time.sleep(0.1)  # the delivery record opens moments after the order
            for _ in range(2):
                api.post(f"/delivery/order/{order['order_id']}/update-status", headers=as_staff)
            shoot(
                browser, options.app, f"/orders/{order['order_id']}", shopper, PHONE, options.out / "tracking-phone.png"
            )
            shoot(browser, options.app, "/staff", staff, DESKTOP, options.out / "board-desktop.png")
            shoot(browser, options.app, "/", shopper, PHONE, options.out / "shop-phone-dark.png", theme="dark")
            browser.close()


if __name__ == "__main__":
    main()
