"""Builds the cart & order service app."""

from __future__ import annotations

import asyncio
import contextlib
from contextlib import AsyncExitStack
from datetime import timedelta

from fastapi import FastAPI

from winkit.core.auth import ServiceTokens
from winkit.core.event_contracts import DeliveryStatusChanged
from winkit.core.events import On, start_event_bus
from winkit.core.http import ServiceClient
from winkit.core.keys import service_secret
from winkit.core.outbox import Outbox
from winkit.core.service import create_service_app
from winkit.core.settings import Settings
from winkit.orders import api
from winkit.orders.cart import CartService
from winkit.orders.catalog_client import CatalogClient
from winkit.orders.delivery_client import DeliveryClient
from winkit.orders.ordering import Orders
from winkit.orders.pricing import FeeRule
from winkit.orders.store import OrdersStore
from winkit.orders.users_client import UsersClient


async def _startup(app: FastAPI, stack: AsyncExitStack) -> None:
    settings: Settings = app.state.settings
    outbox = Outbox(app.state.db, "orders")
    store = OrdersStore(app.state.db, outbox)
    await store.ensure_indexes()
    tokens = ServiceTokens(service_secret(settings), "orders")
    app.state.service_tokens = tokens
    catalog_http = ServiceClient("catalog", settings.catalog_url, tokens)
    stack.push_async_callback(catalog_http.aclose)
    users_http = ServiceClient("users", settings.users_url, tokens=None)
    stack.push_async_callback(users_http.aclose)
    delivery_http = ServiceClient("delivery", settings.delivery_url, tokens)
    stack.push_async_callback(delivery_http.aclose)
    catalog = CatalogClient(catalog_http)
    rule = FeeRule(fee_paise=settings.delivery_fee_paise, free_from_paise=settings.free_delivery_threshold_paise)
    promise = timedelta(minutes=settings.delivery_promise_minutes)
    stale_after = timedelta(seconds=settings.reservation_timeout)
    orders = Orders(store, catalog, UsersClient(users_http), DeliveryClient(delivery_http), rule, promise, stale_after)
    app.state.cart = CartService(store, catalog, rule)
    app.state.orders = orders

    await start_event_bus(app, stack, outbox, [On(DeliveryStatusChanged, orders.follow_delivery)])
    recovery = asyncio.create_task(orders.recover_forever())

    async def stop_recovery() -> None:
        recovery.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await recovery

    stack.push_async_callback(stop_recovery)


def create_app(settings: Settings | None = None) -> FastAPI:
    return create_service_app(
        name="orders",
        settings=settings or Settings(),
        router=api.router,
        startup=_startup,
        title="Winkit cart & order",
        description="Carts, checkout that never oversells, order history and cancellation.",
    )
