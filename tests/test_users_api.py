"""User service over HTTP against the embedded database."""

from __future__ import annotations

import unicodedata
import uuid

import httpx
import pytest
from harness import assert_problem, latest_code, register, unique_email

from winkit.users.accounts import DEV_STAFF_EMAIL, DEV_STAFF_PASSWORD


def test_signup_login_profile_flow(users):
    email = unique_email()
    sent = users.post("/otp/send", json={"email": email})
    assert sent.status_code == 202
    assert sent.json() == {"expires_in": 300}
    [message] = users.get("/dev/outbox", params={"to": email}).json()
    assert message["to"] == email
    assert set(message) == {"to", "subject", "body", "sent_at"}
    code = latest_code(users, email)
    assert len(code) == 6

    created = users.post(
        "/register",
        json={"name": "Ravi", "email": email, "password": "s3cret-pass", "otp": code, "phone": "+91 98765 43210"},
    )
    assert created.status_code == 201, created.text
    user = created.json()
    assert set(user) == {"id", "name", "email", "role", "created_at"}
    assert user["role"] == "customer"

    token = users.post("/login", json={"email": email.upper(), "password": "s3cret-pass"}).json()
    assert token["token_type"] == "bearer"
    assert token["user_id"] == user["id"]
    assert token["expires_in"] > 0

    profile = users.get("/profile", headers={"Authorization": f"Bearer {token['access_token']}"})
    assert profile.status_code == 200
    assert profile.json()["email"] == email
    assert profile.json()["phone"] == "+91 98765 43210"
    assert not any("password" in key or "hash" in key for key in profile.json())


def test_oauth2_password_form_login(users, stack):
    customer = stack.customer()
    response = users.post("/login", data={"username": customer.email, "password": customer.password})
    assert response.status_code == 200
    assert response.json()["user_id"] == customer.user_id


def test_wrong_code_expired_and_reused_codes_are_refused(users):
    email = unique_email()
    users.post("/otp/send", json={"email": email})
    code = latest_code(users, email)
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    body = {"name": "A", "email": email, "password": "long-enough", "otp": wrong}
    assert_problem(users.post("/register", json=body), 400)
    assert users.post("/register", json={**body, "otp": code}).status_code == 201
    # The code is single-use: used up, it is a wrong code, taken address or not.
    assert_problem(users.post("/register", json={**body, "otp": code}), 400)


def test_code_dies_after_five_wrong_tries(users):
    email = unique_email()
    users.post("/otp/send", json={"email": email})
    code = latest_code(users, email)
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    body = {"name": "A", "email": email, "password": "long-enough"}
    for _ in range(5):
        assert_problem(users.post("/register", json={**body, "otp": wrong}), 400)
    assert_problem(users.post("/register", json={**body, "otp": code}), 400)


def test_resend_cooldown_gives_429_with_retry_after(users):
    email = unique_email()
    assert users.post("/otp/send", json={"email": email}).status_code == 202
    again = users.post("/otp/send", json={"email": email.upper()})
    assert_problem(again, 429)
    assert 1 <= int(again.headers["Retry-After"]) <= 30


def test_codes_are_random(users):
    codes = set()
    for _ in range(3):
        email = unique_email()
        users.post("/otp/send", json={"email": email})
        codes.add(latest_code(users, email))
    assert len(codes) == 3
    assert "123456" not in codes


def test_email_is_unique_case_insensitively(users, stack):
    customer = stack.customer()
    users.post("/otp/send", json={"email": customer.email.upper()})
    code = latest_code(users, customer.email)
    body = {"name": "B", "email": customer.email.upper(), "password": "long-enough", "otp": code}
    assert_problem(users.post("/register", json=body), 409)


@pytest.mark.parametrize(
    "override",
    [
        {"email": "not-an-email"},
        {"password": "short"},
        {"otp": "12ab56"},
        {"name": ""},
        {"role": "admin"},
        {"phone": "call me"},
    ],
)
def test_register_bad_input_is_422(users, override):
    body = {"name": "A", "email": unique_email(), "password": "long-enough", "otp": "123456", **override}
    problem = assert_problem(users.post("/register", json=body), 422)
    assert problem["errors"]


@pytest.mark.parametrize("missing", ["name", "email", "password", "otp"])
def test_register_missing_field_is_422(users, missing):
    body = {"name": "A", "email": unique_email(), "password": "long-enough", "otp": "123456"}
    del body[missing]
    assert_problem(users.post("/register", json=body), 422)


def test_malformed_json_is_422(users):
    response = users.post("/register", content=b'{"name": ', headers={"content-type": "application/json"})
    assert_problem(response, 422)
    assert_problem(users.post("/login", content=b"[1,2", headers={"content-type": "application/json"}), 422)


def test_unknown_email_and_wrong_password_get_the_same_401(users, stack):
    customer = stack.customer()
    wrong_password = users.post("/login", json={"email": customer.email, "password": "nope-nope"})
    unknown = users.post("/login", json={"email": unique_email(), "password": "nope-nope"})
    assert_problem(wrong_password, 401)
    assert_problem(unknown, 401)
    assert wrong_password.json()["detail"] == unknown.json()["detail"]


def test_profile_needs_a_token_and_guards_other_users(users, stack):
    assert_problem(users.get("/profile"), 401)
    alice, bob = stack.customer(), stack.customer()
    assert_problem(users.get("/profile", params={"user_id": bob.user_id}, headers=alice.headers), 403)
    assert users.get("/profile", params={"user_id": alice.user_id}, headers=alice.headers).status_code == 200
    staff = stack.staff_headers()
    seen = users.get("/profile", params={"user_id": bob.user_id}, headers=staff)
    assert seen.status_code == 200
    assert seen.json()["email"] == bob.email
    assert_problem(users.get("/profile", params={"user_id": "not-an-id"}, headers=staff), 404)


def test_profile_update_changes_name_and_phone_only(users, stack):
    customer = stack.customer()
    updated = users.patch("/profile", json={"name": "New Name", "phone": "9876543210"}, headers=customer.headers)
    assert updated.status_code == 200
    assert updated.json()["name"] == "New Name"
    assert updated.json()["phone"] == "9876543210"
    cleared = users.patch("/profile", json={"phone": None}, headers=customer.headers)
    assert cleared.json()["phone"] is None
    assert cleared.json()["name"] == "New Name"
    for field in ({"role": "admin"}, {"email": "x@example.com"}, {"id": "abc"}, {"name": None}):
        assert_problem(users.patch("/profile", json=field, headers=customer.headers), 422)
    assert users.get("/profile", headers=customer.headers).json()["role"] == "customer"


def test_dev_staff_account_exists(stack):
    assert stack.staff_headers()["Authorization"].startswith("Bearer ")


def test_jwks_publishes_the_public_key_only(users):
    keys = users.get("/.well-known/jwks.json").json()["keys"]
    assert keys
    assert all(k["kty"] == "OKP" and k["alg"] == "EdDSA" and "kid" in k and "d" not in k for k in keys)


def test_register_then_login_twice_keeps_one_account(users):
    customer = register(users)
    users.post("/otp/send", json={"email": unique_email()})
    assert users.post("/login", json={"email": customer.email, "password": customer.password}).status_code == 200


def test_an_expired_code_is_refused(stack):
    import time

    from harness import LiveServer, bound_socket

    from winkit.users.app import create_app

    server = LiveServer(create_app(stack.settings.model_copy(update={"otp_ttl": 1})), bound_socket())
    server.start()
    try:
        with httpx.Client(base_url=server.url) as short_lived:
            email = unique_email()
            assert short_lived.post("/otp/send", json={"email": email}).json() == {"expires_in": 1}
            code = latest_code(short_lived, email)
            time.sleep(1.2)
            body = {"name": "Late", "email": email, "password": "long-enough", "otp": code}
            assert_problem(short_lived.post("/register", json=body), 400)
    finally:
        server.stop()


# --- one mailbox, one key: codes, accounts and logins agree on an address's identity -----


def send_code(users: httpx.Client, email: str) -> str:
    assert users.post("/otp/send", json={"email": email}).status_code == 202
    return latest_code(users, email)


def sign_up(email: str, code: str) -> dict[str, str]:
    return {"name": "Asha", "email": email, "password": "long-enough", "otp": code}


def tag() -> str:
    return uuid.uuid4().hex[:10]


@pytest.mark.parametrize(
    ("sent_to", "registering"),
    [
        ("strasse-{}@example.com", "straße-{}@example.com"),  # ß is not ss in the local part
        ("bob-{}@strasse.de", "bob-{}@straße.de"),  # nor in the domain: another domain
        ("shopper-{}@example.com", "ſhopper-{}@example.com"),  # long s is not s
    ],
)
def test_a_code_registers_only_the_address_it_was_sent_to(users, sent_to, registering):
    t = tag()
    sent_to, registering = sent_to.format(t), registering.format(t)
    code = send_code(users, sent_to)
    problem = assert_problem(users.post("/register", json=sign_up(registering, code)), 400)
    assert "code" in problem["detail"]
    # The code was not spent on the other address: its own address can still use it.
    created = users.post("/register", json=sign_up(sent_to, code))
    assert created.status_code == 201, created.text
    assert created.json()["email"] == sent_to


def test_the_account_keeps_the_address_the_code_was_sent_to(users):
    t = tag()
    sent_to = f"Asha.Shopper-{t}@bücher.de"
    code = send_code(users, sent_to)
    # Another spelling of the same address: upper case ASCII, the domain's IDNA ASCII form.
    created = users.post("/register", json=sign_up(f"ASHA.SHOPPER-{t}@XN--BCHER-KVA.DE", code))
    assert created.status_code == 201, created.text
    assert created.json()["email"] == sent_to
    token = users.post("/login", json={"email": sent_to, "password": "long-enough"}).json()["access_token"]
    profile = users.get("/profile", headers={"Authorization": f"Bearer {token}"}).json()
    assert profile["email"] == sent_to


def test_spellings_of_one_address_sign_in_to_one_account(users):
    t = tag()
    email = f"ren\u00e9-{t}@bücher.de"
    user_id = users.post("/register", json=sign_up(email, send_code(users, email))).json()["id"]
    for spelling in (
        email,
        unicodedata.normalize("NFD", email),  # a decomposed é
        f"Ren\u00e9-{t}@XN--BCHER-KVA.DE",
        f" ren\u00e9-{t}@Bücher.DE ",
    ):
        response = users.post("/login", json={"email": spelling, "password": "long-enough"})
        assert response.status_code == 200, (spelling, response.text)
        assert response.json()["user_id"] == user_id
    # The outbox finds the mail under any spelling as well.
    assert users.get("/dev/outbox", params={"to": f"Ren\u00e9-{t}@XN--BCHER-KVA.DE"}).json()


def test_distinct_characters_are_not_another_spelling_of_an_account(users, stack):
    customer = stack.customer()  # shopper-...@example.com
    local, _, domain = customer.email.partition("@")
    for lookalike in (f"{local.replace('s', 'ſ', 1)}@{domain}", f"{local}@{domain.replace('e', 'é', 1)}"):
        response = users.post("/login", json={"email": lookalike, "password": customer.password})
        assert_problem(response, 401)


@pytest.mark.parametrize(
    "email",
    ["a..b@example.com", ".asha@example.com", "asha@exa_mple.com", "asha@-example.com", "asha@xn--zz.de", "ß@ß"],
)
def test_login_with_an_invalid_address_is_a_wrong_login(users, email):
    problem = assert_problem(users.post("/login", json={"email": email, "password": "nope-nope"}), 401)
    unknown = users.post("/login", json={"email": unique_email(), "password": "nope-nope"}).json()
    assert problem["detail"] == unknown["detail"]


@pytest.mark.parametrize("spelling", [DEV_STAFF_EMAIL, DEV_STAFF_EMAIL.upper()])
def test_staff_on_a_special_use_domain_can_sign_in(users, spelling):
    response = users.post("/login", json={"email": spelling, "password": DEV_STAFF_PASSWORD})
    assert response.status_code == 200, response.text
    assert response.json()["role"] == "staff"


# --- no enumeration: nothing tells a stranger whether an address has an account -----------


def same_problem(one: httpx.Response, other: httpx.Response) -> None:
    assert one.status_code == other.status_code
    assert one.headers["content-type"] == other.headers["content-type"]
    assert one.json() == other.json()


def test_a_wrong_code_for_a_taken_address_is_just_a_wrong_code(users, stack):
    customer = stack.customer()
    unknown = unique_email()
    # No code outstanding at all.
    taken = users.post("/register", json=sign_up(customer.email, "000000"))
    assert_problem(taken, 400)
    same_problem(taken, users.post("/register", json=sign_up(unknown, "000000")))
    # A code outstanding, and a wrong one presented.
    code = send_code(users, customer.email)
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    taken = users.post("/register", json=sign_up(customer.email, wrong))
    assert_problem(taken, 400)
    unknown_code = send_code(users, unknown)
    unknown_wrong = f"{(int(unknown_code) + 1) % 1_000_000:06d}"
    same_problem(taken, users.post("/register", json=sign_up(unknown, unknown_wrong)))
    # Only whoever reads the mailbox learns that the address is taken.
    assert_problem(users.post("/register", json=sign_up(customer.email, code)), 409)


def test_sending_a_code_answers_alike_for_known_and_unknown_addresses(users, stack):
    customer, stranger = stack.customer(), unique_email()
    known = users.post("/otp/send", json={"email": customer.email})
    unknown = users.post("/otp/send", json={"email": stranger})
    assert known.status_code == unknown.status_code == 202
    assert known.json() == unknown.json()
    assert known.headers["content-type"] == unknown.headers["content-type"]
    assert set(known.headers) == set(unknown.headers)
    # And the cooldown that follows is the same too.
    again_known = users.post("/otp/send", json={"email": customer.email})
    again_unknown = users.post("/otp/send", json={"email": stranger})
    assert again_known.status_code == again_unknown.status_code == 429
    assert again_known.json()["detail"] == again_unknown.json()["detail"]
