"""`winkit run` (what `make run` calls) as a user sees it: a real process tree."""

from __future__ import annotations

import signal
import socket
import subprocess
from pathlib import Path

import httpx
import pytest
from harness import WINKIT, eventually, isolated_run, latest_code, start_winkit_run, unique_email

from winkit.core.settings import SERVICE_NAMES as SERVICES


@pytest.fixture(scope="module")
def run_setup(tmp_path_factory) -> tuple[dict[str, int], dict[str, str]]:
    return isolated_run(tmp_path_factory.mktemp("run") / "var")


@pytest.fixture(scope="module")
def ports(run_setup) -> dict[str, int]:
    return run_setup[0]


@pytest.fixture(scope="module")
def env(run_setup) -> dict[str, str]:
    return run_setup[1]


def listening(ports: dict[str, int]) -> list[int]:
    taken = []
    for port in ports.values():
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                taken.append(port)
    return taken


def processes_using(data_dir: str) -> list[int]:
    """Pids whose command line names the run's data dir (its database and bus)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if data_dir in (entry / "cmdline").read_bytes().decode(errors="replace"):
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def leftovers(ports: dict[str, int], data_dir: str) -> dict[str, object]:
    """What is still up, for a failure message: ports still listening, and the command lines
    and states of processes still naming the data dir."""
    remaining = {}
    for pid in processes_using(data_dir):
        try:
            status = Path(f"/proc/{pid}/status").read_text().splitlines()
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        state = next((line for line in status if line.startswith("State:")), "")
        remaining[pid] = f"{state} {cmdline[:200]}"
    names = {port: name for name, port in ports.items()}
    return {"listening": [names[port] for port in listening(ports)], "processes": remaining}


def test_run_serves_everything_and_ctrl_c_stops_it_all(env, ports):
    process = start_winkit_run(env)
    try:
        for name in SERVICES:
            health = httpx.get(f"http://127.0.0.1:{ports[name]}/health", timeout=5)
            assert health.status_code == 200
            assert health.json()["service"] == name
        users = httpx.Client(base_url=f"http://127.0.0.1:{ports['users']}", timeout=10)
        email = unique_email("run")
        users.post("/otp/send", json={"email": email})
        body = {"name": "Run Test", "email": email, "password": "persist-me", "otp": latest_code(users, email)}
        assert users.post("/register", json=body).status_code == 201
        products = httpx.get(f"http://127.0.0.1:{ports['catalog']}/products", timeout=10).json()
        assert len(products) >= 60
        gateway = f"http://127.0.0.1:{ports['gateway']}"
        assert httpx.get(f"{gateway}/health", timeout=10).json()["services"] == dict.fromkeys(SERVICES, "ok")
        assert len(httpx.get(f"{gateway}/api/catalog/products", timeout=10).json()) == len(products)
        app = f"http://127.0.0.1:{ports['app']}"
        assert httpx.get(f"{app}/health", timeout=10).json()["service"] == "app"
        assert "flutter_bootstrap.js" in httpx.get(f"{app}/orders/some-deep-link", timeout=10).text
    finally:
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 0
    eventually(lambda: listening(ports) == [] and processes_using(env["WINKIT_DATA_DIR"]) == [], timeout=30)

    # A second start keeps what the first one stored.
    process = start_winkit_run(env)
    try:
        login = users.post("/login", json={"email": email, "password": "persist-me"})
        assert login.status_code == 200
        again = httpx.get(f"http://127.0.0.1:{ports['catalog']}/products", timeout=10).json()
        assert len(again) == len(products)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
    eventually(lambda: listening(ports) == [], timeout=30)


def test_a_taken_port_is_one_line_not_a_traceback(env, ports):
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", ports["orders"]))
        blocker.listen()
        result = subprocess.run([str(WINKIT), "run"], env=env, capture_output=True, text=True, timeout=30)
    assert result.returncode == 1
    assert f"port {ports['orders']} is already in use" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    eventually(lambda: listening({k: v for k, v in ports.items() if k != "orders"}) == [], timeout=30)


def test_killing_the_supervisor_leaves_no_orphans(env, ports):
    process = start_winkit_run(env)
    process.kill()
    process.wait()
    eventually(
        lambda: listening(ports) == [] and processes_using(env["WINKIT_DATA_DIR"]) == [],
        timeout=30,
        describe=lambda: leftovers(ports, env["WINKIT_DATA_DIR"]),
    )
