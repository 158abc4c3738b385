"""The catalog's in-memory read model: two replicas on the real database and NATS, a write
through one read through the other; conditional answers; parity with the database."""

from __future__ import annotations

import asyncio
import json
import random
import re
import statistics
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import nats
import pytest
from bson import ObjectId
from harness import CHECKOUT, LiveServer, assert_problem, bound_socket, eventually, free_port, new_product
from pymongo import ASCENDING, AsyncMongoClient, MongoClient

from winkit.catalog.app import create_app
from winkit.catalog.http_cache import names
from winkit.catalog.models import ProductRecord
from winkit.catalog.read_model import CatalogReadModel, name_key
from winkit.catalog.schemas import Product
from winkit.catalog.store import ACTIVE
from winkit.core.settings import Settings
from winkit.launcher import Supervisor, mongodb_child, nats_child

# Generous: the machine is shared and noisy. The delays measured are printed, not asserted.
VISIBLE_WITHIN = 10.0
POLL = 0.001


@pytest.fixture(scope="module")
def replicas(stack, staff) -> Iterator[tuple[httpx.Client, httpx.Client]]:
    """The stack's catalog and a second replica on the same database and NATS."""
    second = LiveServer(create_app(stack.settings), bound_socket())
    second.start()
    try:
        with stack.client("catalog") as first, httpx.Client(base_url=second.url, timeout=30) as other:
            # Ready once it hears events: a write through the first shows on the second.
            probe = new_product(first, staff, stock=1)
            first.patch(f"/products/{probe['id']}", json={"stock": 2}, headers=staff)
            eventually(lambda: other.get(f"/products/{probe['id']}").json()["stock"] == 2, timeout=30)
            yield first, other
    finally:
        second.stop()


@pytest.fixture(scope="module")
def mongo(mongodb_uri) -> Iterator[MongoClient]:
    with MongoClient(mongodb_uri) as client:
        yield client


def shown(client: httpx.Client, product_id: str) -> dict | None:
    response = client.get(f"/products/{product_id}")
    return response.json() if response.status_code == 200 else None


def visible_after(client: httpx.Client, product_id: str, field: str, value: object) -> float:
    """Seconds until ``client`` shows ``field`` = ``value`` for the product."""
    started = time.perf_counter()
    eventually(
        lambda: (shown(client, product_id) or {}).get(field) == value,
        timeout=VISIBLE_WITHIN,
        interval=POLL,
        describe=lambda: shown(client, product_id),
    )
    return time.perf_counter() - started


def report(label: str, delays: list[float]) -> None:
    ms = sorted(d * 1000 for d in delays)
    p99 = statistics.quantiles(ms, n=100, method="inclusive")[98] if len(ms) > 1 else ms[0]
    print(f"\n{label}: {len(ms)} writes, p50 {statistics.median(ms):.1f} ms, p99 {p99:.1f} ms, max {ms[-1]:.1f} ms")


def test_a_write_through_one_replica_shows_on_the_other(replicas, staff):
    first, other = replicas
    product = new_product(first, staff, stock=5, price=10.0)
    delays = []
    for n in range(50):
        price = 11.0 + n
        assert first.patch(f"/products/{product['id']}", json={"price": price}, headers=staff).status_code == 200
        delays.append(visible_after(other, product["id"], "price", price))
    report("price edit through one replica, seen by the other", delays)

    created = new_product(first, staff, stock=3)
    visible_after(other, created["id"], "stock", 3)
    assert created["id"] in {p["id"] for p in other.get("/products", params={"category": "Test Shelf"}).json()}
    assert first.delete(f"/products/{created['id']}", headers=staff).status_code == 204
    eventually(lambda: shown(other, created["id"]) is None, timeout=VISIBLE_WITHIN, interval=POLL)
    assert_problem(other.get(f"/products/{created['id']}"), 404)


def test_stock_taken_and_given_back_by_checkout_shows_on_every_replica(replicas, staff, stack):
    first, other = replicas
    product = new_product(first, staff, stock=7)
    shopper = stack.customer()
    with stack.client("orders") as orders:
        added = orders.post("/cart/add", json={"product_id": product["id"], "quantity": 3}, headers=shopper.headers)
        assert added.status_code < 300, added.text
        order = orders.post("/order/create", json=CHECKOUT, headers=shopper.headers)
        assert order.status_code == 201, order.text
        seen = visible_after(other, product["id"], "stock", 4)
        print(f"\nstock reserved by a checkout seen by the other replica {seen * 1000:.1f} ms after it answered")
        assert shown(first, product["id"])["stock"] == 4
        cancel = orders.post(f"/orders/{order.json()['order_id']}/cancel", headers=shopper.headers)
        assert cancel.status_code == 200, cancel.text
    # Given back by whichever replica consumes order.cancelled: both show it.
    for replica in replicas:
        visible_after(replica, product["id"], "stock", 7)


def test_etags_and_not_modified(replicas, staff):
    first, other = replicas
    product = new_product(first, staff, stock=4)
    visible_after(other, product["id"], "stock", 4)
    for path in ("/products", f"/products/{product['id']}", "/categories", "/products?q=test&limit=3"):
        answer = first.get(path)
        etag = answer.headers["etag"]
        assert answer.status_code == 200
        assert etag.startswith('"')
        assert etag.endswith('"')
        # The same data has the same tag on every replica.
        assert other.get(path).headers["etag"] == etag
        for condition in (etag, f"W/{etag}", f'"other", {etag}', "*"):
            again = first.get(path, headers={"If-None-Match": condition})
            assert again.status_code == 304
            assert again.content == b""
            assert again.headers["etag"] == etag
        assert first.get(path, headers={"If-None-Match": '"other"'}).status_code == 200

    before = first.get(f"/products/{product['id']}").headers["etag"]
    first.patch(f"/products/{product['id']}", json={"stock": 5}, headers=staff)
    for replica in replicas:
        visible_after(replica, product["id"], "stock", 5)
        changed = replica.get(f"/products/{product['id']}", headers={"If-None-Match": before})
        assert changed.status_code == 200
        assert changed.headers["etag"] != before


def test_if_none_match_comparison():
    tag = '"abc"'
    assert names('"abc"', tag)
    assert names('W/"abc"', tag)
    assert names(' "x" , W/"abc"', tag)
    assert names(" * ", tag)
    assert not names('"abcd"', tag)
    assert not names("abc", tag)
    assert not names("", tag)
    assert not names('"x,abc"', tag)


def test_repeated_answers_are_the_routes_answers(replicas):
    first, _ = replicas
    for _ in range(3):
        assert_problem(first.get("/products", params={"limit": "0"}), 422)
        assert_problem(first.get("/products/0123456789abcdef01234567"), 404)
    for _ in range(3):
        answer = first.get("/products", params={"limit": 2})
        assert answer.status_code == 200
        assert len(answer.json()) == 2
        assert answer.headers["x-request-id"]

    def answered() -> int:
        line = r'http_requests_total\{method="GET",route="/products",service="catalog",status="200"\} (\S+)'
        counted = re.search(line, first.get("/metrics").text)
        return 0 if counted is None else int(float(counted.group(1)))

    # Answers served again without routing are counted under their route, as routed ones are.
    before = answered()
    for _ in range(3):
        first.get("/products", params={"limit": 2})
    assert answered() == before + 3


def expected_json(doc: dict, settings: Settings) -> dict:
    link = f"{settings.effective_public_api_url}/catalog/products/{doc['_id']}/image.svg"
    return Product.of(ProductRecord.from_document(doc), link).model_dump(mode="json")


# The oracle: the same product searches asked of the database, as shoppers' reads were
# answered before the read model.


def search_filter(category: str | None, q: str | None, ids: list[str] | None = None) -> dict:
    """The database query for a product search (the read model answers the same in memory)."""
    query: dict = {**ACTIVE}
    if ids is not None:
        query["_id"] = {"$in": [ObjectId(i) for i in ids]}
    if category is not None:
        query["category"] = category
    if q:
        # The shopper's text is matched literally, never as a pattern.
        query["name_key"] = {"$regex": re.escape(name_key(q.strip()))}
    return query


def test_search_text_is_matched_literally():
    assert search_filter(None, "a.b*(") == {**ACTIVE, "name_key": {"$regex": r"a\.b\*\("}}
    assert search_filter("Dairy", None) == {**ACTIVE, "category": "Dairy"}


def database_answers(mongodb_uri: str, queries: list[dict], settings: Settings) -> tuple[list, list]:
    """What the database says for each product query (by category, name and id), and how
    many products each category has."""

    async def ask() -> tuple[list, list]:
        async with AsyncMongoClient(mongodb_uri, tz_aware=True) as client:
            products = client[Settings.database_name("catalog")]["products"]
            order = [("category", ASCENDING), ("name_key", ASCENDING), ("_id", ASCENDING)]
            answers = []
            for query in queries:
                ids = query["ids"].split(",") if "ids" in query else None
                cursor = products.find(search_filter(query.get("category"), query.get("q"), ids)).sort(order)
                cursor = cursor.skip(query.get("offset", 0))
                if query.get("limit") is not None:
                    cursor = cursor.limit(query["limit"])
                answers.append([expected_json(doc, settings) for doc in await cursor.to_list()])
            pipeline = [
                {"$match": ACTIVE},
                {"$group": {"_id": "$category", "count": {"$sum": 1}}},
                {"$sort": {"_id": 1}},
            ]
            categories = [
                {"name": row["_id"], "count": row["count"]} async for row in await products.aggregate(pipeline)
            ]
            return answers, categories

    return asyncio.run(ask())


def parity_queries(products: list[dict], deleted_id: str) -> list[dict]:
    rng = random.Random(9457)
    categories = sorted({p["category"] for p in products})
    product_names = [p["name"] for p in products]
    queries: list[dict] = [{}, {"q": ".*"}, {"q": "("}, {"q": "   "}, {"q": "ÜN"}, {"q": "SS"}, {"q": "a.b"}]
    queries += [{"category": c} for c in categories] + [{"category": categories[0][:-1]}, {"category": "nope"}]
    for _ in range(120):
        query: dict = {}
        if rng.random() < 0.4:
            query["category"] = rng.choice(categories)
        if rng.random() < 0.6:
            name = rng.choice(product_names)
            start = rng.randrange(len(name))
            text = name[start : start + rng.randint(1, 6)]
            query["q"] = rng.choice([text, text.upper(), text.lower(), f" {text} "])
        if rng.random() < 0.25:
            picked = rng.sample(products, k=min(len(products), rng.randint(1, 8)))
            ids = [p["id"] for p in picked] + rng.choice([[], [deleted_id], ["0123456789abcdef01234567"]])
            query["ids"] = ",".join(ids)
        if rng.random() < 0.4:
            query["limit"] = rng.randint(1, 30)
        if rng.random() < 0.4:
            query["offset"] = rng.randint(0, 60)
        queries.append(query)
    return queries


def test_answers_equal_the_databases(replicas, staff, stack, mongodb_uri):
    first, other = replicas
    # Names that tie (same shelf and name: the id decides), fold case beyond ASCII, look like patterns.
    tricky = ["Ünïcode Dal", "ünïcode dal", "Strasse Salt", "Straße Salt", "A.B (x) [y]*", "Twin", "Twin", "Gone"]
    made = []
    for name in tricky:
        body = {"name": name, "category": "Parity Shelf", "price": 12.5, "unit": "1 pc", "stock": 2}
        response = first.post("/products", json=body, headers=staff)
        assert response.status_code == 201, response.text
        made.append(response.json())
    gone = made.pop()
    first.delete(f"/products/{gone['id']}", headers=staff)
    for product in made:
        visible_after(other, product["id"], "stock", 2)
    eventually(lambda: shown(other, gone["id"]) is None, timeout=VISIBLE_WITHIN, interval=POLL)

    queries = parity_queries(first.get("/products").json(), gone["id"])
    remaining = queries

    def agree() -> bool:
        # Other tests' events may still be landing: a disagreement must go away, not stay.
        nonlocal remaining
        expected, categories = database_answers(mongodb_uri, remaining, stack.settings)
        remaining = [
            query
            for query, answer in zip(remaining, expected, strict=True)
            if any(replica.get("/products", params=query).json() != answer for replica in replicas)
        ]
        shown_categories = [{k: c[k] for k in ("name", "count")} for c in other.get("/categories").json()]
        return not remaining and shown_categories == categories

    eventually(agree, timeout=30, describe=lambda: remaining[:3])
    print(f"\n{len(queries)} product queries and the categories: both replicas answer as the database does")


def republish(nats_url: str, event_type: str, data: dict) -> None:
    """An event as a duplicate or a late delivery would bring it."""

    async def send() -> None:
        nc = await nats.connect(nats_url)
        body = {
            "id": uuid.uuid4().hex,
            "type": event_type,
            "version": 1,
            "source": "catalog",
            "occurred_at": datetime.now(UTC).isoformat(),
            "data": data,
        }
        await nc.publish(f"winkit.{event_type}", json.dumps(body).encode())
        await nc.flush()
        await nc.close()

    asyncio.run(send())


def test_late_and_repeated_events_never_take_a_replica_back(replicas, staff, nats_server):
    first, other = replicas
    product = new_product(first, staff, stock=10, price=20.0)
    first.patch(f"/products/{product['id']}", json={"stock": 9, "price": 21.0}, headers=staff)
    first.patch(f"/products/{product['id']}", json={"stock": 8, "price": 22.0}, headers=staff)
    visible_after(other, product["id"], "price", 22.0)
    # The creation's and the first edit's events again, and a stock event that is out of date.
    for version in (1, 2, 2):
        republish(nats_server.url, "product.changed", {"product_id": product["id"], "version": version})
    stale_stock = {"product_id": product["id"], "stock": 10, "delta": 0, "reason": "adjusted", "order_id": None}
    republish(nats_server.url, "stock.changed", stale_stock)
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline:
        for replica in replicas:
            assert {k: shown(replica, product["id"])[k] for k in ("stock", "price")} == {"stock": 8, "price": 22.0}


def test_the_model_applies_only_newer_documents():
    model = CatalogReadModel("http://shop.example/api")
    oid, now = ObjectId(), datetime.now(UTC)
    doc = {
        "_id": oid,
        "sku": "tea-1",
        "name": "Tea",
        "name_key": "tea",
        "category": "Drinks",
        "price_paise": 1000,
        "unit": "1 box",
        "stock": 5,
        "updated_at": now,
        "deleted_at": None,
    }
    assert model.apply(ProductRecord.from_document({**doc, "version": 2, "stock": 4}))
    generation = model.generation
    assert not model.apply(ProductRecord.from_document({**doc, "version": 1, "stock": 5}))  # late
    assert not model.apply(ProductRecord.from_document({**doc, "version": 2, "stock": 4}))  # repeated
    assert model.generation == generation
    assert json.loads(model.product(str(oid)).body)["stock"] == 4
    assert model.apply(ProductRecord.from_document({**doc, "version": 3, "deleted_at": now}))
    assert not model.apply(ProductRecord.from_document({**doc, "version": 2}))  # an older document cannot bring it back
    assert model.product(str(oid)) is None
    assert json.loads(model.categories().body) == []


def test_a_replica_that_missed_events_converges(replicas, staff, nats_server, mongo):
    first, other = replicas
    edited, written = new_product(first, staff, stock=6), new_product(first, staff, stock=6)
    for product in (edited, written):
        visible_after(other, product["id"], "stock", 6)
    nats_server.stop()
    try:
        for replica in replicas:
            eventually(lambda r=replica: r.get("/health").json()["checks"]["nats"] == "down")
        # Announced while nobody can hear it ...
        assert first.patch(f"/products/{edited['id']}", json={"stock": 2}, headers=staff).status_code == 200
        # ... and never announced at all (as if its event were lost).
        mongo["winkit_catalog"]["products"].update_one(
            {"_id": ObjectId(written["id"])}, {"$set": {"stock": 1}, "$inc": {"version": 1}}
        )
    finally:
        nats_server.start()
    for replica in replicas:
        visible_after(replica, edited["id"], "stock", 2)
        visible_after(replica, written["id"], "stock", 1)


@pytest.fixture
def empty_catalog(tmp_path_factory) -> Iterator[Settings]:
    """A database and a NATS of its own: seeding is only for an empty catalog."""
    workdir: Path = tmp_path_factory.mktemp("seeding")
    supervisor = Supervisor(workdir / "logs")
    mongodb_port = free_port()
    supervisor.start(mongodb_child(mongodb_port, workdir / "mongodb"), timeout=60)
    nats_port = free_port()
    supervisor.start(nats_child(nats_port, free_port(), workdir / "nats"), timeout=30)
    try:
        yield Settings(
            env="dev",
            data_dir=workdir,
            mongodb_uri=f"mongodb://127.0.0.1:{mongodb_port}/?directConnection=true&retryWrites=false",
            nats_url=f"nats://127.0.0.1:{nats_port}",
            public_api_url="http://shop.example/api",
            seed_demo_catalog=False,
            log_level="WARNING",
        )
    finally:
        supervisor.stop_all()


def test_demo_seeding_reaches_a_replica_already_running(empty_catalog):
    waiting = LiveServer(create_app(empty_catalog), bound_socket())
    waiting.start()
    seeding = None
    try:
        with httpx.Client(base_url=waiting.url, timeout=30) as other:
            assert other.get("/products").json() == []
            # Past its re-read after connecting: only the seeding's events can tell it now.
            eventually(lambda: waiting.app.state.read_model_sync.resyncs >= 1)
            seeding = LiveServer(
                create_app(empty_catalog.model_copy(update={"seed_demo_catalog": True})), bound_socket()
            )
            seeding.start()
            started = time.perf_counter()
            with httpx.Client(base_url=seeding.url, timeout=30) as first:
                seeded = first.get("/products").json()
                assert len(seeded) >= 60
                eventually(lambda: other.get("/products").json() == seeded, timeout=VISIBLE_WITHIN, interval=0.01)
                print(f"\nseeded catalog shown by the other replica {time.perf_counter() - started:.3f} s later")
    finally:
        if seeding is not None:
            seeding.stop()
        waiting.stop()
