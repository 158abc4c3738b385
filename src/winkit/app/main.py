"""The app's entry point: one Shell per browser tab (or phone), on one shared HTTP client.

``winkit run`` serves it on the web (see ``app.py``); ``python -m winkit.app`` opens it
as a desktop window, and ``flet build`` packages the same code for Android and iOS.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import flet as ft
import httpx

from winkit.app.client import WinkitApi
from winkit.app.shell import Route, Shell
from winkit.app.views import account, cart, orders, shop, staff

ROUTES = [
    Route("/", shop.home),
    Route("/product/:pid", shop.product),
    Route("/cart", cart.cart, signed_in=True),
    Route("/checkout", cart.checkout, signed_in=True),
    Route("/orders", orders.history, signed_in=True),
    Route("/orders/:oid", orders.tracking, signed_in=True),
    Route("/login", account.login),
    Route("/signup", account.signup),
    Route("/account", account.account, signed_in=True),
    Route("/staff", staff.board, signed_in=True, staff=True),
    Route("/staff/stock", staff.stock, signed_in=True, staff=True),
]

# A session's calls answer in milliseconds; anything slower is shown as a problem.
API_TIMEOUT = 15.0


def api_client(api_url: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=api_url.rstrip("/"), timeout=API_TIMEOUT)


def build_main(http: httpx.AsyncClient) -> Callable[[ft.Page], Awaitable[None]]:
    async def main(page: ft.Page) -> None:
        await Shell(page, WinkitApi(http, client_ip=page.client_ip), ROUTES).start()

    return main
