"""Sign-in limits per account email, counted by the user service in its database.

Over HTTP against users-service replicas of their own with a strict limit (3/hour), so the
stack's shared users service (10/minute) throttles no other test. Each test signs in with
addresses of its own, so tests do not share counts. Hourly windows: a window edge passing
mid-test (which would start a fresh count for these new addresses) is all but impossible.
The window's slide and Retry-After are tested with a clock of the test's own.
"""

from __future__ import annotations

import threading
import unicodedata
import uuid
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import httpx
import pytest
from harness import LiveServer, assert_problem, bound_socket, register, unique_email

from winkit.core.database import close, connect, service_database
from winkit.core.email import email_key
from winkit.core.errors import TooManyRequests
from winkit.users.app import create_app
from winkit.users.sign_in_limits import InvalidSignInRate, SignInLimits, SignInRate
from winkit.users.store import UsersStore

STRICT = {"sign_in_rate_limit": "3/hour"}


@pytest.fixture(scope="module")
def replicas(stack) -> Iterator[list[httpx.Client]]:
    """Two replicas of the user service with the strict limit, on the stack's database."""
    settings = stack.settings.model_copy(update=STRICT)
    servers = [LiveServer(create_app(settings), bound_socket()) for _ in range(2)]
    clients = []
    try:
        for server in servers:
            server.start()
            clients.append(httpx.Client(base_url=server.url, timeout=30))
        yield clients
    finally:
        for client in clients:
            client.close()
        for server in servers:
            server.stop()


@pytest.fixture(scope="module")
def strict(replicas: list[httpx.Client]) -> httpx.Client:
    return replicas[0]


def assert_rate_limited(response: httpx.Response) -> None:
    body = assert_problem(response, 429)
    assert body["type"].endswith("/too-many-requests")
    assert body["detail"].startswith("Too many sign-in attempts for this email; try again in ")
    assert 1 <= int(response.headers["retry-after"]) <= 3600


def wrong_login(email: str) -> dict[str, str]:
    return {"email": email, "password": "wrong password"}


# --- over HTTP ----------------------------------------------------------------------


def test_login_is_limited_per_email(strict, stack):
    shopper = stack.customer()
    form = {"username": shopper.email, "password": shopper.password}
    # The OAuth2 form counts like JSON, and a successful login counts like a failed one.
    assert strict.post("/login", data=form).status_code == 200
    for _ in range(2):
        assert_problem(strict.post("/login", json=wrong_login(shopper.email.upper())), 401)
    assert_rate_limited(strict.post("/login", data=form))
    # Another address keeps its own allowance.
    other = stack.customer()
    assert strict.post("/login", json={"email": other.email, "password": other.password}).status_code == 200


def test_every_spelling_of_an_address_counts_against_its_one_limit(strict, stack):
    """The limit keys an address exactly as accounts are keyed."""
    t = uuid.uuid4().hex[:10]
    email = f"ren\u00e9-{t}@bücher.de"
    with stack.client("users") as users:
        shopper = register(users, email)
    spellings = (unicodedata.normalize("NFD", email), f"REN\u00e9-{t}@XN--BCHER-KVA.DE", f" Ren\u00e9-{t}@Bücher.De")
    for spelling in spellings:
        assert_problem(strict.post("/login", json=wrong_login(spelling)), 401)
    assert_rate_limited(strict.post("/login", data={"username": email, "password": shopper.password}))


def test_a_lookalike_address_is_no_way_around_the_limit(strict, stack):
    shopper = stack.customer()  # shopper-...@example.com
    for _ in range(3):
        assert_problem(strict.post("/login", json=wrong_login(shopper.email)), 401)
    assert_rate_limited(strict.post("/login", json={"email": shopper.email, "password": shopper.password}))
    # A long s is not an s: the lookalike has an allowance of its own, but no account behind it.
    lookalike = {"email": shopper.email.replace("s", "\u017f", 1), "password": shopper.password}
    assert_problem(strict.post("/login", json=lookalike), 401)


@pytest.mark.parametrize("email", ["a..b@example.com", "asha@exa_mple.com", "asha@xn--zz.de"])
def test_an_invalid_address_at_sign_in_is_the_services_answer(strict, email):
    """An address that cannot be anyone's is not counted: every attempt is a wrong login."""
    unknown = strict.post("/login", json=wrong_login(unique_email())).json()
    for _ in range(5):
        response = strict.post("/login", data={"username": email, "password": "nope-nope"})
        assert assert_problem(response, 401)["detail"] == unknown["detail"]


def test_one_time_codes_are_limited_per_email(strict):
    email = unique_email()
    assert strict.post("/otp/send", json={"email": email}).status_code == 202
    for _ in range(2):
        # The resend cooldown answers these, in its own words, and they count all the same.
        cooldown = assert_problem(strict.post("/otp/send", json={"email": email.upper()}), 429)
        assert cooldown["detail"].startswith("A code was sent to this address moments ago")
    assert_rate_limited(strict.post("/otp/send", json={"email": email}))


def test_logins_and_codes_share_one_allowance(strict, stack):
    shopper = stack.customer()
    assert strict.post("/otp/send", json={"email": shopper.email}).status_code == 202
    for _ in range(2):
        assert_problem(strict.post("/login", json=wrong_login(shopper.email)), 401)
    assert_rate_limited(strict.post("/login", json={"email": shopper.email, "password": shopper.password}))


def test_replicas_share_one_count(replicas, stack):
    first, second = replicas
    shopper = stack.customer()
    right = {"email": shopper.email, "password": shopper.password}
    assert_problem(first.post("/login", json=wrong_login(shopper.email)), 401)
    assert_problem(second.post("/login", json=wrong_login(shopper.email)), 401)
    assert first.post("/login", json=right).status_code == 200
    assert_rate_limited(second.post("/login", json=right))
    assert_rate_limited(first.post("/login", json=right))


def test_concurrent_attempts_let_exactly_the_limit_through(replicas, stack):
    """Attempts released together, across both replicas, against a limit of 3."""
    shopper = stack.customer()
    right = {"email": shopper.email, "password": shopper.password}
    attempts = 24
    start = threading.Barrier(attempts)

    def attempt(n: int) -> int:
        url = replicas[n % 2].base_url.join("/login")
        start.wait(timeout=30)
        return httpx.post(url, json=right, timeout=30).status_code

    with ThreadPoolExecutor(attempts) as pool:
        statuses = list(pool.map(attempt, range(attempts)))
    assert sorted(statuses) == [200] * 3 + [429] * (attempts - 3)


@pytest.mark.parametrize(
    "value",
    ["ten/minute", "10 per minute", "10/minutes", "10/fortnight", "0/minute", "-1/hour", "10/minute;5/hour", ""],
)
def test_a_bad_limit_is_refused_at_start_up(stack, value):
    with pytest.raises(InvalidSignInRate) as refused:
        create_app(stack.settings.model_copy(update={"sign_in_rate_limit": value}))
    message = str(refused.value)
    assert "WINKIT_SIGN_IN_RATE_LIMIT" in message
    assert repr(value) in message
    assert "'10/minute'" in message


@pytest.mark.parametrize(
    ("value", "rate"),
    [("10/minute", SignInRate(10, 60)), ("3/hour", SignInRate(3, 3600)), ("1/second", SignInRate(1, 1))],
)
def test_a_limit_is_attempts_per_window(value, rate):
    assert SignInRate.parse(value) == rate


# --- the window, on a clock of the test's own --------------------------------------

# The start of a minute, in Unix seconds, far enough ahead that the database's TTL sweep
# leaves these windows alone. The times below avoid the exact instants at which an attempt
# starts to fit, which floating point could put on either side.
MINUTE = 4_000_000_020


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def store(stack) -> AsyncIterator[UsersStore]:
    client = connect(stack.settings, "users")
    yield UsersStore(service_database(client, "users"))
    await close(client)


async def refused_for(limits: SignInLimits, email: str) -> int:
    """Seconds the refusal asks to wait (Retry-After)."""
    with pytest.raises(TooManyRequests) as refused:
        await limits.count_attempt(email)
    seconds = int(refused.value.headers["Retry-After"])
    assert f"try again in {seconds} second" in refused.value.detail
    return seconds


async def test_a_window_frees_as_it_slides(store):
    clock = Clock(MINUTE + 30.25)
    limits = SignInLimits(store, SignInRate(3, 60), clock=clock)
    email = unique_email()
    for _ in range(3):
        await limits.count_attempt(email)
    wait = await refused_for(limits, email)
    assert wait == 30  # until this minute's attempts start to slide out of the last minute
    clock.now += wait - 1
    await refused_for(limits, email)

    # Past the minute's edge the last minute still holds 2.99 attempts: room for one, not
    # the fresh three a fixed window would allow.
    clock.now += 1
    await limits.count_attempt(email)
    wait = await refused_for(limits, email)
    assert wait == 20
    clock.now += wait - 1
    await refused_for(limits, email)
    clock.now += 1
    await limits.count_attempt(email)

    # A minute without attempts after a minute with two: the whole allowance is back.
    clock.now = MINUTE + 180.25
    for _ in range(3):
        await limits.count_attempt(email)
    await refused_for(limits, email)


async def test_refused_attempts_do_not_push_the_wait_out(store):
    clock = Clock(MINUTE + 10.5)
    limits = SignInLimits(store, SignInRate(2, 60), clock=clock)
    email = unique_email()
    for _ in range(2):
        await limits.count_attempt(email)
    first_wait = await refused_for(limits, email)
    for _ in range(20):
        await refused_for(limits, email)
    clock.now += first_wait
    await limits.count_attempt(email)


async def test_old_windows_are_swept_by_the_database(store):
    """Each window's count outlives the next window (which weighs it), and no longer."""
    limits = SignInLimits(store, SignInRate(3, 60), clock=Clock(MINUTE + 5.5))
    email = unique_email()
    await limits.count_attempt(email)
    window = await store.sign_in_windows.find_one({"_id": f"{email_key(email)}:60s:{MINUTE}"})
    assert window is not None
    assert window["attempts"] == 1
    assert window["expires_at"] == datetime.fromtimestamp(MINUTE + 120, UTC)
    ttl = [
        index for index in (await store.sign_in_windows.index_information()).values() if "expireAfterSeconds" in index
    ]
    assert [(index["key"], index["expireAfterSeconds"]) for index in ttl] == [([("expires_at", 1)], 0)]


async def test_windows_of_two_rates_starting_together_keep_their_own_counts(store):
    """On the hour a minute's window and an hour's start at the same instant: attempts
    counted by a replica at 10/minute (say, before a change of the setting reached it)
    spend nothing of the allowance at 3/hour, and the other way round."""
    on_the_hour = 3600 * 1_111_112
    per_minute = SignInLimits(store, SignInRate(10, 60), clock=Clock(on_the_hour + 1))
    per_hour = SignInLimits(store, SignInRate(3, 3600), clock=Clock(on_the_hour + 1))
    email = unique_email()
    for _ in range(3):
        await per_minute.count_attempt(email)
    for _ in range(3):
        await per_hour.count_attempt(email)
    with pytest.raises(TooManyRequests):
        await per_hour.count_attempt(email)
    for _ in range(7):
        await per_minute.count_attempt(email)
