"""The app's API client against the real stack, through the gateway: typed answers and
typed failures for everything the app does."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from decimal import Decimal

import httpx
import pytest
from harness import ADDRESS, latest_code, new_product, unique_email

from winkit.app.client import ApiError, ApiUnreachable, WinkitApi, new_key
from winkit.app.models import Address, OpenDelivery
from winkit.app.state import NoticeKind, describe
from winkit.users.accounts import DEV_STAFF_EMAIL, DEV_STAFF_PASSWORD

# Bounds on waiting for a live update, never expectations of speed.
LIVE_TIMEOUT = 30


@pytest.fixture
async def http(app_stack) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=app_stack.api_url, timeout=30) as client:
        yield client


async def signed_in(http: httpx.AsyncClient, users: httpx.Client) -> tuple[WinkitApi, str]:
    api = WinkitApi(http)
    email = unique_email("client")
    await api.send_code(email)
    await api.register(name="Kabir", email=email, password="a long password", code=latest_code(users, email))
    session = await api.login(email, "a long password")
    api.token = session.access_token
    assert session.role == "customer"
    assert not session.is_staff
    return api, email


async def staff_api(http: httpx.AsyncClient) -> WinkitApi:
    api = WinkitApi(http)
    session = await api.login(DEV_STAFF_EMAIL, DEV_STAFF_PASSWORD)
    assert session.is_staff
    api.token = session.access_token
    return api


async def test_browsing_needs_no_account_and_a_stale_token_does_not_break_it(http):
    api = WinkitApi(http, token="an-expired-or-broken-token")
    categories = await api.categories()
    assert categories
    assert all(c.image_url.endswith("/image.svg") for c in categories)
    milk = await api.products(q="milk")
    assert milk
    assert all("milk" in p.name.lower() for p in milk)
    one = await api.product(milk[0].id)
    assert one == milk[0]
    assert isinstance(one.price, Decimal)
    with pytest.raises(ApiError) as refused:
        await api.profile()
    assert refused.value.status == 401
    assert describe(refused.value).kind == NoticeKind.SIGNED_OUT


async def test_sign_up_fill_the_cart_order_and_follow_it_live(http, users, catalog, stack):
    api, email = await signed_in(http, users)
    assert (await api.profile()).email == email
    product = new_product(catalog, stack.staff_headers(), stock=10, price=30.0)
    cart = await api.add_to_cart(product["id"], 3)
    cart = await api.remove_from_cart(product["id"], 1)
    assert cart.count == 2
    assert cart.subtotal == 60
    assert cart.free_delivery_from == 199

    key = new_key()
    placed = await api.place_order(Address.model_validate(ADDRESS), key, note="Ring the bell")
    again = await api.place_order(Address.model_validate(ADDRESS), key, note="Ring the bell")  # a retry
    assert again.order_id == placed.order_id
    assert placed.total == Decimal(85)
    assert placed.promised_at
    assert (await api.cart()).items == []
    assert [o.order_id for o in await api.orders()] == [placed.order_id]

    staff = await staff_api(http)
    updates = api.follow(placed.order_id)

    async def next_status() -> str:
        return (await asyncio.wait_for(anext(updates), LIVE_TIMEOUT)).status

    assert await next_status() == "PLACED"
    await staff.move(placed.order_id, "CONFIRMED")
    assert await next_status() == "CONFIRMED"
    cancelled = await api.cancel(placed.order_id)
    assert cancelled.status == "CANCELLED"
    assert await next_status() == "CANCELLED"
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(anext(updates), LIVE_TIMEOUT)  # a final status ends the stream


async def test_saved_addresses_and_checkout_to_one(http, users, catalog, stack):
    api, _ = await signed_in(http, users)
    home = await api.add_address(Address.model_validate(ADDRESS))
    work = await api.add_address(Address.model_validate({**ADDRESS, "line1": "WeWork, Residency Road"}))
    assert home.is_default
    assert not work.is_default
    assert (await api.make_default(work.id or "")).is_default
    assert [a.id for a in await api.addresses()] == [work.id, home.id]
    product = new_product(catalog, stack.staff_headers(), stock=5)
    await api.add_to_cart(product["id"])
    order = await api.place_order(work, new_key())
    assert order.address is not None
    assert order.address.line1 == "WeWork, Residency Road"
    await api.delete_address(home.id or "")
    assert [a.id for a in await api.addresses()] == [work.id]


async def test_out_of_stock_is_a_typed_refusal_that_names_the_item(http, users, catalog, stack):
    api, _ = await signed_in(http, users)
    staff_headers = stack.staff_headers()
    product = new_product(catalog, staff_headers, stock=4)
    await api.add_to_cart(product["id"], 3)
    catalog.patch(f"/products/{product['id']}", json={"stock": 2}, headers=staff_headers)
    with pytest.raises(ApiError) as refused:
        await api.place_order(Address.model_validate(ADDRESS), new_key())
    notice = describe(refused.value)
    assert refused.value.status == 409
    assert notice.kind == NoticeKind.OUT_OF_STOCK
    assert notice.available == {product["id"]: 2}
    assert product["name"] in notice.text
    with pytest.raises(ApiError) as too_many:
        await api.add_to_cart(product["id"], 5)
    assert describe(too_many.value).available == {product["id"]: 2}


async def test_bad_input_is_a_validation_problem_with_field_messages(http, users, catalog, stack):
    api, _ = await signed_in(http, users)
    product = new_product(catalog, stack.staff_headers(), stock=4)
    await api.add_to_cart(product["id"])
    wrong = Address.model_validate({**ADDRESS, "pincode": "12"})
    with pytest.raises(ApiError) as refused:
        await api.place_order(wrong, new_key())
    assert refused.value.status == 422
    assert refused.value.kind == "validation"
    assert "6-digit Indian pincode" in describe(refused.value).text


async def test_staff_see_the_queue_and_the_board_stream(http, users, catalog, stack):
    api, _ = await signed_in(http, users)
    product = new_product(catalog, stack.staff_headers(), stock=4)
    await api.add_to_cart(product["id"])
    placed = await api.place_order(Address.model_validate(ADDRESS), new_key())
    staff = await staff_api(http)
    board = staff.board()
    first = await asyncio.wait_for(anext(board), LIVE_TIMEOUT)
    assert isinstance(first, list)

    async def shown_on_the_board() -> OpenDelivery:
        # In the first snapshot, or (the record opens moments after the order) an update soon after.
        update: list[OpenDelivery] | OpenDelivery = first
        while True:
            mine = [d for d in (update if isinstance(update, list) else [update]) if d.order_id == placed.order_id]
            if mine:
                return mine[0]
            update = await anext(board)

    shown = await asyncio.wait_for(shown_on_the_board(), LIVE_TIMEOUT)
    assert shown.items[0].product_id == product["id"]
    assert shown.allowed_next == ["CONFIRMED", "CANCELLED"]
    assert placed.order_id in [d.order_id for d in await staff.open_deliveries()]
    with pytest.raises(ApiError) as refused:
        await api.open_deliveries()
    assert refused.value.status == 403
    await board.aclose()


async def test_a_gateway_that_cannot_be_reached_is_unreachable_not_a_crash():
    async with httpx.AsyncClient(base_url="http://127.0.0.1:9/api", timeout=2) as nowhere:
        with pytest.raises(ApiUnreachable):
            await WinkitApi(nowhere).categories()
