"""The app's one way to the Winkit API: typed calls through the gateway.

Every failure is one of two exceptions: ``ApiError`` (the API answered with a problem:
RFC 9457 fields, request id, Retry-After) or ``ApiUnreachable`` (no answer, or the
gateway says a service is down). Views turn them into words with ``state.describe``.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel, TypeAdapter

from winkit.app.models import (
    Address,
    Cart,
    Category,
    DeliveryStatus,
    OpenDelivery,
    Order,
    Product,
    Profile,
    SignedIn,
)

Model = TypeVar("Model", bound=BaseModel)

# Statuses that mean "nobody could answer": worth a retry banner rather than an apology.
_UNAVAILABLE = frozenset({502, 503, 504})


@dataclass
class ApiError(Exception):
    """The API refused or failed a request and said why (problem+json)."""

    status: int
    title: str
    detail: str = ""
    type: str = "about:blank"
    request_id: str | None = None
    retry_after: int | None = None
    extensions: dict[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        return f"{self.status} {self.title}: {self.detail}"

    @property
    def kind(self) -> str:
        """The problem type's last segment, e.g. ``validation`` or ``too-many-requests``."""
        return self.type.rstrip("/").rsplit("/", 1)[-1]


class ApiUnreachable(Exception):
    """The API or a service behind it could not be reached; retrying later may work."""

    def __init__(self, message: str, request_id: str | None = None) -> None:
        super().__init__(message)
        self.request_id = request_id


def _problem(response: httpx.Response) -> ApiError:
    try:
        body = response.json()
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    known = {"status", "title", "detail", "type", "instance"}
    retry_after = response.headers.get("retry-after")
    return ApiError(
        status=response.status_code,
        title=str(body.get("title") or response.reason_phrase),
        detail=str(body.get("detail") or ""),
        type=str(body.get("type") or "about:blank"),
        request_id=response.headers.get("x-request-id"),
        retry_after=int(retry_after) if retry_after and retry_after.isdigit() else None,
        extensions={k: v for k, v in body.items() if k not in known},
    )


HEARTBEAT = "comment"


class EventStreamParser:
    """Lines of a ``text/event-stream`` in; each whole event out as (name, JSON data), and
    each comment line (a heartbeat) as (HEARTBEAT, its text)."""

    def __init__(self) -> None:
        self._event, self._data = "message", list[str]()

    def feed(self, line: str) -> tuple[str, Any] | None:
        if line.startswith(":"):
            return HEARTBEAT, line[1:].strip()
        if line.startswith("event:"):
            self._event = line.removeprefix("event:").strip()
        elif line.startswith("data:"):
            self._data.append(line.removeprefix("data:").strip())
        elif line == "" and self._data:
            event = self._event, json.loads("\n".join(self._data))
            self._event, self._data = "message", []
            return event
        return None


class WinkitApi:
    """Calls on behalf of one person (or nobody, while ``token`` is None).

    ``http`` is shared by every session of the app server; it has the API's base URL
    (``.../api``) and a timeout. ``token`` changes on sign-in and sign-out.
    """

    def __init__(self, http: httpx.AsyncClient, token: str | None = None, client_ip: str | None = None) -> None:
        self._http = http
        self.token = token
        # The person's own address: the gateway limits requests per client IP, and every
        # session's calls leave from the app server's one address.
        self._client_ip = client_ip

    # --- plumbing -------------------------------------------------------------------

    def _headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        headers = dict(extra or {})
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        if self._client_ip:
            headers["X-Forwarded-For"] = self._client_ip
        return headers

    async def _call(
        self, method: str, path: str, *, idempotency_key: str | None = None, **kwargs: Any
    ) -> httpx.Response:
        extra = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        try:
            response = await self._http.request(method, path, headers=self._headers(extra), **kwargs)
        except httpx.HTTPError as exc:
            raise ApiUnreachable(f"Winkit could not be reached ({type(exc).__name__}).") from exc
        if response.status_code in _UNAVAILABLE:
            problem = _problem(response)
            raise ApiUnreachable(problem.detail or problem.title, problem.request_id)
        if response.status_code >= 400:
            raise _problem(response)
        return response

    async def _get(self, model: type[Model], path: str, **kwargs: Any) -> Model:
        return model.model_validate_json((await self._call("GET", path, **kwargs)).content)

    async def _list(self, model: type[Model], path: str, **kwargs: Any) -> list[Model]:
        return TypeAdapter(list[model]).validate_json((await self._call("GET", path, **kwargs)).content)  # type: ignore[valid-type]

    async def _send(self, model: type[Model], method: str, path: str, **kwargs: Any) -> Model:
        return model.model_validate_json((await self._call(method, path, **kwargs)).content)

    async def _events(self, path: str) -> AsyncIterator[tuple[str, Any]]:
        """(event, data) from a server-sent event stream, until the server ends it."""
        timeout = httpx.Timeout(10.0, read=None)  # quiet streams are fine: heartbeats come
        try:
            async with self._http.stream(
                "GET", path, headers=self._headers({"Accept": "text/event-stream"}), timeout=timeout
            ) as response:
                if response.status_code >= 400:
                    await response.aread()
                    if response.status_code in _UNAVAILABLE:
                        raise ApiUnreachable("Live updates are unavailable right now.")
                    raise _problem(response)
                parser = EventStreamParser()
                async for line in response.aiter_lines():
                    event = parser.feed(line)
                    if event is not None and event[0] != HEARTBEAT:
                        yield event
        except httpx.HTTPError as exc:
            raise ApiUnreachable("The live connection was lost.") from exc

    # --- accounts -------------------------------------------------------------------

    async def send_code(self, email: str) -> None:
        await self._call("POST", "/users/otp/send", json={"email": email})

    async def register(self, *, name: str, email: str, password: str, code: str) -> None:
        body = {"name": name, "email": email, "password": password, "otp": code}
        await self._call("POST", "/users/register", json=body)

    async def login(self, email: str, password: str) -> SignedIn:
        return await self._send(SignedIn, "POST", "/users/login", json={"email": email, "password": password})

    async def profile(self) -> Profile:
        return await self._get(Profile, "/users/profile")

    async def addresses(self) -> list[Address]:
        return await self._list(Address, "/users/addresses")

    async def add_address(self, address: Address, *, make_default: bool = False) -> Address:
        body = {**address.model_dump(exclude={"id", "is_default"}), "is_default": make_default}
        return await self._send(Address, "POST", "/users/addresses", json=body)

    async def make_default(self, address_id: str) -> Address:
        return await self._send(Address, "PATCH", f"/users/addresses/{address_id}", json={"is_default": True})

    async def delete_address(self, address_id: str) -> None:
        await self._call("DELETE", f"/users/addresses/{address_id}")

    # --- catalog --------------------------------------------------------------------

    async def categories(self) -> list[Category]:
        return await self._list(Category, "/catalog/categories")

    async def products(self, *, category: str | None = None, q: str | None = None, limit: int = 200) -> list[Product]:
        params: dict[str, str | int] = {"limit": limit}
        if category:
            params["category"] = category
        if q:
            params["q"] = q
        return await self._list(Product, "/catalog/products", params=params)

    async def product(self, product_id: str) -> Product:
        return await self._get(Product, f"/catalog/products/{product_id}")

    async def set_stock(self, product_id: str, stock: int) -> Product:
        return await self._send(Product, "PATCH", f"/catalog/products/{product_id}", json={"stock": stock})

    # --- cart and orders ------------------------------------------------------------

    async def cart(self) -> Cart:
        return await self._get(Cart, "/orders/cart")

    async def add_to_cart(self, product_id: str, quantity: int = 1) -> Cart:
        body = {"product_id": product_id, "quantity": quantity}
        return await self._send(Cart, "POST", "/orders/cart/add", json=body)

    async def remove_from_cart(self, product_id: str, quantity: int | None = None) -> Cart:
        body: dict[str, Any] = {"product_id": product_id}
        if quantity is not None:
            body["quantity"] = quantity
        return await self._send(Cart, "POST", "/orders/cart/remove", json=body)

    async def place_order(self, destination: Address, idempotency_key: str, note: str | None = None) -> Order:
        """To a saved address (it has an id) or a new one; a retry with the same key places it once."""
        body: dict[str, Any] = {"note": note}
        if destination.id:
            body["address_id"] = destination.id
        else:
            body["address"] = destination.model_dump(exclude={"id", "is_default"})
        return await self._send(Order, "POST", "/orders/order/create", json=body, idempotency_key=idempotency_key)

    async def orders(self) -> list[Order]:
        return await self._list(Order, "/orders/orders")

    async def order(self, order_id: str) -> Order:
        return await self._get(Order, f"/orders/orders/{order_id}")

    async def cancel(self, order_id: str) -> Order:
        return await self._send(Order, "POST", f"/orders/orders/{order_id}/cancel", idempotency_key=new_key())

    async def delivery(self, order_id: str) -> DeliveryStatus:
        return await self._get(DeliveryStatus, f"/delivery/order/{order_id}/status")

    async def follow(self, order_id: str) -> AsyncIterator[DeliveryStatus]:
        """The order's delivery status now and after every change, until it is final."""
        async for event, data in self._events(f"/delivery/order/{order_id}/events"):
            if event == "status":
                yield DeliveryStatus.model_validate(data)

    # --- staff ----------------------------------------------------------------------

    async def open_deliveries(self) -> list[OpenDelivery]:
        return await self._list(OpenDelivery, "/delivery/deliveries")

    async def board(self) -> AsyncIterator[list[OpenDelivery] | OpenDelivery]:
        """Every open delivery (a list) at once and when re-read, then each change."""
        async for event, data in self._events("/delivery/deliveries/events"):
            if event == "snapshot":
                yield TypeAdapter(list[OpenDelivery]).validate_python(data)
            elif event == "delivery":
                yield OpenDelivery.model_validate(data)

    async def move(self, order_id: str, status: str) -> DeliveryStatus:
        return await self._send(
            DeliveryStatus,
            "POST",
            f"/delivery/order/{order_id}/update-status",
            json={"status": status},
            idempotency_key=new_key(),
        )


def new_key() -> str:
    """A fresh Idempotency-Key: one per user intent, reused by that intent's retries."""
    return uuid.uuid4().hex
