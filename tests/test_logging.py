"""Logs a person can use: `winkit run`'s log files are JSON lines, carry the request id, and
never hold an email address, a one-time code, a password or a token."""

from __future__ import annotations

import json
import re
import signal
import sys
import uuid
from pathlib import Path
from urllib.parse import quote, quote_plus

import httpx
import pytest
from harness import isolated_run, latest_code, start_winkit_run, unique_email

from winkit.core.settings import SERVICE_NAMES as SERVICES

WINKIT = Path(sys.executable).parent / "winkit"
# The embedded nats-server and SecantusDB are third-party processes with their own formats.
THIRD_PARTY_LOGS = {"nats.log", "mongodb.log"}
# Paths of the requests below: a line that names one was written while handling it.
REQUEST_PATHS = ("/otp/send", "/register", "/login", "/profile", "/products")


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> dict:
    """One `winkit run` driven through a sign-up, a wrong password and a bad token, then
    stopped with Ctrl-C; what was sent (the secrets) and where its logs are."""
    data_dir = tmp_path_factory.mktemp("logging") / "var"
    ports, env = isolated_run(data_dir)
    tag = uuid.uuid4().hex[:8]
    email = unique_email("logged")
    password = f"pw-{tag}-correct"
    wrong_password = f"pw-{tag}-wrong"
    # Token-shaped, so it looks like what a client would really send.
    bad_token = f"eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJ{tag}In0.forged-{tag}"
    request_ids: dict[str, str] = {}

    def headers(step: str, token: str | None = None) -> dict[str, str]:
        request_ids[step] = f"logtest-{tag}-{step}"
        auth = {"Authorization": f"Bearer {token}"} if token else {}
        return {"X-Request-ID": request_ids[step], **auth}

    process = start_winkit_run(env)
    try:
        gateway = httpx.Client(base_url=f"http://127.0.0.1:{ports['gateway']}/api", timeout=10)
        users = httpx.Client(base_url=f"http://127.0.0.1:{ports['users']}", timeout=10)
        sent = gateway.post("/users/otp/send", json={"email": email}, headers=headers("otp"))
        assert sent.status_code == 202, sent.text
        code = latest_code(users, email)
        body = {"name": "Logged Shopper", "email": email, "password": password, "otp": code}
        created = gateway.post("/users/register", json=body, headers=headers("register"))
        assert created.status_code == 201, created.text
        wrong = {"email": email, "password": wrong_password}
        assert gateway.post("/users/login", json=wrong, headers=headers("wrong-password")).status_code == 401
        login = gateway.post("/users/login", json={"email": email, "password": password}, headers=headers("login"))
        assert login.status_code == 200, login.text
        token = login.json()["access_token"]
        assert gateway.get("/users/profile", headers=headers("profile", token)).status_code == 200
        assert gateway.get("/users/profile", headers=headers("bad-token", bad_token)).status_code == 401
        # A shopper pasting their email into the search box: it travels in a query string.
        search = gateway.get("/catalog/products", params={"q": email}, headers=headers("search"))
        assert search.status_code == 200
        assert httpx.get(f"http://127.0.0.1:{ports['app']}/", timeout=10).status_code == 200
    finally:
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=60) == 0
    logs = {path.name: path.read_text() for path in sorted((data_dir / "logs").glob("*.log"))}
    secrets = {
        "email": email,
        "code": code,
        "password": password,
        "wrong password": wrong_password,
        "token": token,
        "bad token": bad_token,
    }
    return {"logs": logs, "secrets": secrets, "request_ids": request_ids}


def own_lines(run: dict) -> dict[str, list[str]]:
    return {name: text.splitlines() for name, text in run["logs"].items() if name not in THIRD_PARTY_LOGS}


def parsed(run: dict) -> dict[str, list[dict]]:
    return {name: [json.loads(line) for line in lines] for name, lines in own_lines(run).items()}


def test_every_process_logged_to_its_own_file(run):
    assert set(run["logs"]) >= {f"{name}.log" for name in (*SERVICES, "envoy", "gateway", "app")}


def test_every_line_is_one_json_object(run):
    for name, lines in own_lines(run).items():
        for number, line in enumerate(lines, 1):
            try:
                record = json.loads(line)
            except ValueError:
                pytest.fail(f"{name}:{number} is not JSON: {line[:200]}")
            assert isinstance(record, dict), f"{name}:{number} is not an object: {line[:200]}"
            assert {"event", "level", "timestamp"} <= record.keys(), f"{name}:{number}: {line[:200]}"


def test_lines_written_while_handling_a_request_carry_its_id(run):
    records = parsed(run)
    for name, lines in records.items():
        for record in lines:
            if record.get("event") == "request":
                assert record.get("request_id"), f"{name}: access line without a request id: {record}"
            text = " ".join(str(value) for value in record.values())
            if any(path in text for path in REQUEST_PATHS):
                assert record.get("request_id"), f"{name}: a line about a request without its id: {record}"
    # The caller's id is kept at the edge (Envoy's access log) and travels on to the
    # service (a bad token is turned away at the edge).
    for step, request_id in run["request_ids"].items():
        service = {"search": "catalog", "bad-token": "envoy"}.get(step, "users")
        for name in {"envoy.log", f"{service}.log"}:
            ids = {record.get("request_id") for record in records[name]}
            assert request_id in ids, f"{step}: no line in {name} carries {request_id}"
    # The edge logs the path the client asked for, not the one it passed on.
    search = next(r for r in records["envoy.log"] if r.get("request_id") == run["request_ids"]["search"])
    assert search["path"] == "/api/catalog/products", search


def test_no_personal_data_or_secret_is_logged(run):
    for name, text in run["logs"].items():
        if name in THIRD_PARTY_LOGS:
            continue
        for what, secret in run["secrets"].items():
            if what == "code":
                continue
            # As written, or as it travels in a URL (an email's @ becomes %40).
            for form in {secret, quote(secret, safe=""), quote_plus(secret)}:
                assert form.casefold() not in text.casefold(), f"the {what} is in {name}"
    # Six digits could be part of a timestamp's microseconds: look everywhere else.
    code = re.compile(rf"(?<![0-9A-Za-z]){run['secrets']['code']}(?![0-9A-Za-z])")
    for name, lines in own_lines(run).items():
        for line in lines:
            try:
                text = json.dumps({key: value for key, value in json.loads(line).items() if key != "timestamp"})
            except (ValueError, AttributeError):
                text = line
            assert not code.search(text), f"the one-time code is in {name}: {line}"
