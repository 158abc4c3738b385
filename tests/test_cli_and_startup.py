"""The `winkit users create` command, and a service starting while NATS is unreachable."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
from harness import LiveServer, assert_problem, bound_socket, free_port, login, unique_email

WINKIT = Path(sys.executable).parent / "winkit"


def test_users_create_makes_a_staff_account_that_can_log_in(users, mongodb_uri, stack):
    email = unique_email("ops")
    env = {**os.environ, "WINKIT_MONGODB_URI": mongodb_uri, "WINKIT_DATA_DIR": str(stack.settings.data_dir)}
    command = [str(WINKIT), "users", "create", "--role", "admin", "--email", email, "--name", "Ops"]
    created = subprocess.run([*command, "--password", "admin-password"], env=env, capture_output=True, text=True)
    assert created.returncode == 0, created.stderr
    assert "Created admin" in created.stdout
    token = login(users, email, "admin-password")
    assert users.get("/profile", headers={"Authorization": f"Bearer {token}"}).json()["role"] == "admin"

    again = subprocess.run([*command, "--password", "admin-password"], env=env, capture_output=True, text=True)
    assert again.returncode == 1
    assert "already exists" in again.stderr
    assert "Traceback" not in again.stderr
    short = subprocess.run([*command, "--password", "short"], env=env, capture_output=True, text=True)
    assert short.returncode == 2


def test_a_service_starts_and_serves_while_nats_is_unreachable(stack):
    from winkit.orders.app import create_app

    settings = stack.settings.model_copy(update={"nats_url": f"nats://127.0.0.1:{free_port()}"})
    server = LiveServer(create_app(settings), bound_socket())
    # Serving at all with no bus proves start-up does not wait for it (nats-py's own
    # retries would hold it for minutes).
    server.start()
    try:
        with httpx.Client(base_url=server.url) as orders:
            health = orders.get("/health")
            assert health.status_code == 200
            assert health.json()["checks"]["nats"] == "down"
            assert_problem(orders.get("/cart"), 401)
            shopper = stack.customer()
            assert orders.get("/cart", headers=shopper.headers).json()["items"] == []
    finally:
        server.stop()


def test_a_bad_setting_is_one_line_naming_it_not_a_traceback():
    env = {**os.environ, "WINKIT_GATEWAY_AUTH_RATE_LIMIT": "3 per hour"}
    result = subprocess.run([str(WINKIT), "run"], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr.startswith("winkit: WINKIT_GATEWAY_AUTH_RATE_LIMIT:")
    assert "Traceback" not in result.stderr + result.stdout


def test_envoy_config_is_written_for_the_settings_and_valid(tmp_path):
    output = tmp_path / "envoy.json"
    env = {**os.environ, "WINKIT_CATALOG_URL": "http://catalog:8002", "WINKIT_GATEWAY_PORT": "8080"}
    result = subprocess.run(
        [str(WINKIT), "gateway", "envoy-config", "--output", str(output), "--validate"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    config = json.loads(output.read_text())
    [edge] = [listener for listener in config["static_resources"]["listeners"] if listener["name"] == "edge"]
    assert edge["address"]["socket_address"]["port_value"] == 8080
    [catalog] = [cluster for cluster in config["static_resources"]["clusters"] if cluster["name"] == "catalog"]
    endpoint = catalog["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]["socket_address"]
    assert endpoint == {"address": "catalog", "port_value": 8002}
