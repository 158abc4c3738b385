"""Checkout under load, and how soon a placed order's delivery record can be read.

A Python asyncio + httpx generator is enough here: the services place ~15-40 orders a
second, far below what the generator can send (its CPU time is reported to show it).
Shoppers go straight to the services (users, orders, delivery), as tests/harness.py does.
"""

from __future__ import annotations

import asyncio
import statistics
import time
import uuid
from dataclasses import dataclass
from typing import Any

import httpx

from bench import stack

PASSWORD = "correct horse battery"
ADDRESS = {
    "name": "Asha Shopper",
    "phone": "98765 43210",
    "line1": "12 MG Road",
    "landmark": "Opposite the metro station",
    "city": "Bengaluru",
    "pincode": "560001",
}
CHECKOUT = {"address": ADDRESS}
# Bench products: enough stock that no run sells out.
PRODUCTS = 8
STOCK = 100_000


@dataclass
class Shopper:
    email: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def percentiles_ms(samples: list[float]) -> dict[str, float | None]:
    """p1..p99, p99.9 and max of latencies given in seconds, in milliseconds."""
    if not samples:
        return {}
    ordered = sorted(samples)

    def at(q: float) -> float:
        # Nearest rank, as wrk reports its percentiles.
        index = min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))
        return ordered[index] * 1000

    points = {str(p): at(p) for p in range(1, 100)}
    points["99.9"] = at(99.9)
    points["100"] = ordered[-1] * 1000
    return points


def summary_ms(samples: list[float]) -> dict[str, Any]:
    if not samples:
        return {"count": 0}
    points = percentiles_ms(samples)
    return {
        "count": len(samples),
        "p50": points["50"],
        "p90": points["90"],
        "p99": points["99"],
        "max": points["100"],
        "mean": statistics.fmean(samples) * 1000,
        "percentiles": points,
    }


# --- setting up -------------------------------------------------------------------------


async def latest_code(users: httpx.AsyncClient, email: str) -> str:
    """The one-time code from the dev outbox (what tests/harness.py latest_code does)."""
    for _ in range(100):
        messages = (await users.get("/dev/outbox", params={"to": email})).json()
        if messages:
            body = messages[0]["body"]
            return next(word.rstrip(".") for word in body.split() if word.rstrip(".").isdigit())
        await asyncio.sleep(0.05)
    raise RuntimeError(f"no one-time code for {email} in the dev outbox")


async def login(users: httpx.AsyncClient, email: str, password: str) -> str:
    response = await users.post("/login", json={"email": email, "password": password})
    if response.status_code != 200:
        raise RuntimeError(f"login failed for {email}: {response.status_code} {response.text[:300]}")
    return response.json()["access_token"]


async def register(users: httpx.AsyncClient) -> Shopper:
    """A new shopper through the dev OTP flow: otp/send, the dev outbox, register, login."""
    email = f"bench-{uuid.uuid4().hex[:12]}@example.com"
    sent = await users.post("/otp/send", json={"email": email})
    if sent.status_code != 202:
        raise RuntimeError(f"otp/send answered {sent.status_code}: {sent.text[:300]}")
    body = {"name": "Bench Shopper", "email": email, "password": PASSWORD, "otp": await latest_code(users, email)}
    created = await users.post("/register", json=body)
    if created.status_code != 201:
        raise RuntimeError(f"register answered {created.status_code}: {created.text[:300]}")
    return Shopper(email, await login(users, email, PASSWORD))


async def bench_products(
    users: httpx.AsyncClient, catalog: httpx.AsyncClient, staff_login: tuple[str, str]
) -> list[str]:
    """Products with plenty of stock, created by the dev staff account."""
    staff = {"Authorization": f"Bearer {await login(users, *staff_login)}"}
    ids = []
    for n in range(PRODUCTS):
        body = {
            "name": f"Bench item {n} {uuid.uuid4().hex[:6]}",
            "category": "Bench Shelf",
            "price": 120.0,
            "unit": "1 pc",
            "stock": STOCK,
        }
        response = await catalog.post("/products", json=body, headers=staff)
        if response.status_code != 201:
            raise RuntimeError(f"creating a bench product answered {response.status_code}: {response.text[:300]}")
        ids.append(response.json()["id"])
    return ids


# --- one order --------------------------------------------------------------------------


@dataclass
class Placed:
    order_id: str | None
    add_s: float
    create_s: float
    create_status: int
    placed_at: float


async def place_order(orders: httpx.AsyncClient, shopper: Shopper, product_id: str) -> Placed:
    """POST /cart/add, then POST /order/create with an Idempotency-Key and a new address."""
    started = time.perf_counter()
    added = await orders.post("/cart/add", json={"product_id": product_id, "quantity": 1}, headers=shopper.headers)
    added_at = time.perf_counter()
    if added.status_code != 200:
        return Placed(None, added_at - started, 0.0, added.status_code, added_at)
    headers = {**shopper.headers, "Idempotency-Key": uuid.uuid4().hex}
    created = await orders.post("/order/create", json=CHECKOUT, headers=headers)
    placed_at = time.perf_counter()
    order_id = created.json().get("order_id") if created.status_code == 201 else None
    return Placed(order_id, added_at - started, placed_at - added_at, created.status_code, placed_at)


# --- the checkout run -------------------------------------------------------------------


def opcounters(mongodb_port: int) -> dict[str, int] | None:
    """SecantusDB's serverStatus opcounters, or None where it does not answer them."""
    from pymongo import MongoClient
    from pymongo.errors import PyMongoError

    uri = f"mongodb://127.0.0.1:{mongodb_port}/?directConnection=true&retryWrites=false"
    try:
        with MongoClient(uri, serverSelectionTimeoutMS=3000) as client:
            counters = client.admin.command("serverStatus").get("opcounters")
    except PyMongoError:
        return None
    if not isinstance(counters, dict) or not counters:
        return None
    return {key: int(value) for key, value in counters.items() if isinstance(value, int | float)}


def _difference(after: dict[str, int] | None, before: dict[str, int] | None) -> dict[str, int] | None:
    if after is None or before is None:
        return None
    return {key: after[key] - before.get(key, 0) for key in after}


class Clients:
    def __init__(self, urls: dict[str, str], connections: int) -> None:
        limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
        self.users = httpx.AsyncClient(base_url=urls["users"], timeout=30, limits=limits)
        self.catalog = httpx.AsyncClient(base_url=urls["catalog"], timeout=30, limits=limits)
        self.orders = httpx.AsyncClient(base_url=urls["orders"], timeout=30, limits=limits)
        self.delivery = httpx.AsyncClient(base_url=urls["delivery"], timeout=30, limits=limits)

    async def close(self) -> None:
        for client in (self.users, self.catalog, self.orders, self.delivery):
            await client.aclose()


async def ready_shoppers(
    clients: Clients, staff_login: tuple[str, str], shoppers_n: int
) -> tuple[list[str], list[Shopper]]:
    """Bench products and signed-up shoppers, each with one order placed to warm up
    (connections, token caches): not counted."""
    products = await bench_products(clients.users, clients.catalog, staff_login)
    shoppers = list(await asyncio.gather(*(register(clients.users) for _ in range(shoppers_n))))
    await asyncio.gather(*(place_order(clients.orders, s, products[0]) for s in shoppers))
    return products, shoppers


async def _checkout(
    urls: dict[str, str],
    staff_login: tuple[str, str],
    shoppers_n: int,
    seconds: float,
    mongodb_port: int | None,
    watch: dict[str, int],
) -> dict[str, Any]:
    clients = Clients(urls, shoppers_n * 2)
    try:
        products, shoppers = await ready_shoppers(clients, staff_login, shoppers_n)
        await asyncio.sleep(1.0)

        # What the database does with nothing going on, to subtract from the run.
        idle_seconds = 3.0
        idle_before = opcounters(mongodb_port) if mongodb_port else None
        await asyncio.sleep(idle_seconds)
        idle_after = opcounters(mongodb_port) if mongodb_port else None
        idle = _difference(idle_after, idle_before)

        placed: list[Placed] = []
        servers_before = {name: stack.cpu_seconds(pid) for name, pid in watch.items()}
        machine_before = stack.machine_busy_seconds()[0]
        ops_before = opcounters(mongodb_port) if mongodb_port else None
        generator_before = time.process_time()
        started = time.perf_counter()
        deadline = started + seconds

        async def shop(index: int, shopper: Shopper) -> None:
            n = 0
            while time.perf_counter() < deadline:
                placed.append(await place_order(clients.orders, shopper, products[(index + n) % len(products)]))
                n += 1

        await asyncio.gather(*(shop(i, s) for i, s in enumerate(shoppers)))
        elapsed = time.perf_counter() - started
        generator_cpu = time.process_time() - generator_before
        servers_after = {name: stack.cpu_seconds(pid) for name, pid in watch.items()}
        machine_busy = stack.machine_busy_seconds()[0] - machine_before
        # Let the events of the last orders be handled (delivery records) before counting.
        settle_seconds = 2.0
        await asyncio.sleep(settle_seconds)
        ops_after = opcounters(mongodb_port) if mongodb_port else None
    finally:
        await clients.close()

    ok = [p for p in placed if p.order_id is not None]
    failed: dict[str, int] = {}
    for p in placed:
        if p.order_id is None:
            failed[str(p.create_status)] = failed.get(str(p.create_status), 0) + 1
    result: dict[str, Any] = {
        "shoppers": shoppers_n,
        "seconds": seconds,
        "elapsed_s": elapsed,
        "orders": len(ok),
        "failed_by_status": failed,
        "orders_per_s": len(ok) / elapsed,
        "order_create": summary_ms([p.create_s for p in ok]),
        "cart_add": summary_ms([p.add_s for p in ok]),
        "add_and_create": summary_ms([p.add_s + p.create_s for p in ok]),
        "generator_cpu_s": generator_cpu,
        "generator_cpu_cores": generator_cpu / elapsed,
        "server_cpu_s": {name: servers_after[name] - servers_before[name] for name in watch},
        "machine_busy_cores": machine_busy / elapsed,
    }
    ops = _difference(ops_after, ops_before)
    if ops is None:
        result["db_ops"] = {"available": False, "reason": "SecantusDB did not answer serverStatus opcounters"}
    elif not ok:
        result["db_ops"] = {"available": False, "reason": "no order was placed", "raw": ops}
    else:
        window = elapsed + settle_seconds
        assert idle is not None
        background = {key: idle.get(key, 0) * window / idle_seconds for key in ops}
        # Our own two serverStatus calls are commands too.
        net = {key: ops[key] - background[key] - (2 if key == "command" else 0) for key in ops}
        result["db_ops"] = {
            "available": True,
            "method": "serverStatus opcounters before/after, less the idle rate measured just before",
            "raw": ops,
            "idle_per_s": {key: value / idle_seconds for key, value in idle.items()},
            "per_order": {key: value / len(ok) for key, value in net.items()},
            "total_per_order": sum(net.values()) / len(ok),
            "raw_total_per_order": sum(ops.values()) / len(ok),
        }
    return result


def checkout(
    urls: dict[str, str],
    staff_login: tuple[str, str],
    shoppers: int,
    seconds: float,
    mongodb_port: int | None,
    watch: dict[str, int],
) -> dict[str, Any]:
    return asyncio.run(_checkout(urls, staff_login, shoppers, seconds, mongodb_port, watch))


# --- placed -> readable ------------------------------------------------------------------


async def _visibility(
    urls: dict[str, str],
    staff_login: tuple[str, str],
    shoppers_n: int,
    seconds: float,
    poll_s: float,
    watch: dict[str, int],
) -> dict[str, Any]:
    clients = Clients(urls, shoppers_n * 2)
    try:
        products, shoppers = await ready_shoppers(clients, staff_login, shoppers_n)
        samples: list[float] = []
        polls: list[int] = []
        timeouts = 0
        failed = 0
        servers_before = {name: stack.cpu_seconds(pid) for name, pid in watch.items()}
        machine_before = stack.machine_busy_seconds()[0]
        generator_before = time.process_time()
        started = time.perf_counter()
        deadline = started + seconds

        async def shop(index: int, shopper: Shopper) -> None:
            nonlocal timeouts, failed
            n = 0
            while time.perf_counter() < deadline:
                placed = await place_order(clients.orders, shopper, products[(index + n) % len(products)])
                n += 1
                if placed.order_id is None:
                    failed += 1
                    continue
                tries = 0
                give_up = placed.placed_at + 10.0
                while True:
                    tries += 1
                    status = await clients.delivery.get(f"/order/{placed.order_id}/status", headers=shopper.headers)
                    if status.status_code == 200:
                        samples.append(time.perf_counter() - placed.placed_at)
                        polls.append(tries)
                        break
                    if time.perf_counter() > give_up:
                        timeouts += 1
                        break
                    await asyncio.sleep(poll_s)

        await asyncio.gather(*(shop(i, s) for i, s in enumerate(shoppers)))
        elapsed = time.perf_counter() - started
        generator_cpu = time.process_time() - generator_before
        machine_busy = stack.machine_busy_seconds()[0] - machine_before
        servers = {name: stack.cpu_seconds(pid) - servers_before[name] for name, pid in watch.items()}
    finally:
        await clients.close()
    return {
        "shoppers": shoppers_n,
        "seconds": seconds,
        "poll_interval_ms": poll_s * 1000,
        "placed_to_readable": summary_ms(samples),
        "polls_per_order": {"mean": statistics.fmean(polls), "max": max(polls)} if polls else {},
        "timeouts": timeouts,
        "failed_orders": failed,
        "generator_cpu_cores": generator_cpu / elapsed,
        "server_cpu_s": servers,
        "server_cores": sum(servers.values()) / elapsed,
        "machine_busy_cores": machine_busy / elapsed,
    }


def visibility(
    urls: dict[str, str],
    staff_login: tuple[str, str],
    shoppers: int,
    seconds: float,
    watch: dict[str, int],
    poll_s: float = 0.002,
) -> dict[str, Any]:
    return asyncio.run(_visibility(urls, staff_login, shoppers, seconds, poll_s, watch))
