"""What every service gets from the platform: errors, tokens, request ids, metrics, CORS."""

from __future__ import annotations

import base64
import json
import time

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from harness import assert_problem


def _b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def test_root_and_health(users, catalog):
    for client, name in ((users, "users"), (catalog, "catalog")):
        assert client.get("/").json()["service"] == name
        health = client.get("/health")
        assert health.status_code == 200
        assert health.json()["status"] == "ok"


def test_unknown_route_is_a_404_problem(catalog):
    assert_problem(catalog.get("/no/such/route"), 404)
    assert_problem(catalog.get("/products/"), 404)  # no redirect to /products
    assert_problem(catalog.put("/products"), 405)


def test_request_id_is_kept_or_issued(catalog):
    kept = catalog.get("/", headers={"X-Request-ID": "abc-123"})
    assert kept.headers["x-request-id"] == "abc-123"
    issued = catalog.get("/")
    assert len(issued.headers["x-request-id"]) == 32
    unsafe = catalog.get("/", headers={"X-Request-ID": "bad id\twith spaces"})
    assert unsafe.headers["x-request-id"] != "bad id\twith spaces"
    assert catalog.get("/no/such").headers["x-request-id"]


def test_metrics_count_requests_by_route(catalog):
    catalog.get("/products", params={"limit": 1})
    text = catalog.get("/metrics").text
    assert 'http_requests_total{method="GET",route="/products",service="catalog",status="200"}' in text
    assert "http_request_duration_seconds_bucket" in text


def test_cors_allows_only_the_app(catalog):
    allowed = catalog.options(
        "/products",
        headers={"Origin": "http://localhost:8080", "Access-Control-Request-Method": "GET"},
    )
    assert allowed.headers["access-control-allow-origin"] == "http://localhost:8080"
    refused = catalog.get("/products", params={"limit": 1}, headers={"Origin": "http://evil.example"})
    assert "access-control-allow-origin" not in refused.headers


def test_forged_and_broken_tokens_are_401(catalog, stack):
    customer = stack.customer()
    header, payload, signature = customer.token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    staff_claims = _b64({**claims, "role": "admin"})
    none_header = _b64({"alg": "none", "typ": "JWT"})
    other_key = Ed25519PrivateKey.generate()
    kid = json.loads(base64.urlsafe_b64decode(header + "=="))["kid"]
    wrong_key = jwt.encode(claims, other_key, algorithm="EdDSA", headers={"kid": kid})
    expired_claims = {**claims, "exp": int(time.time()) - 10}
    expired = ".".join([header, _b64(expired_claims), signature])
    tampered_signature = signature[:-4] + ("AAAA" if signature[-4:] != "AAAA" else "BBBB")
    for token in (
        f"{header}.{staff_claims}.{signature}",
        f"{none_header}.{payload}.",
        wrong_key,
        expired,
        f"{header}.{payload}.{tampered_signature}",
        "not-a-jwt",
    ):
        response = catalog.post("/products", json={}, headers={"Authorization": f"Bearer {token}"})
        assert_problem(response, 401)
    assert catalog.post("/products", json={}, headers=customer.headers).status_code == 403


def test_a_validly_signed_but_expired_token_is_401(stack, catalog):
    import winkit.core.keys as keys
    from winkit.core.auth import Role, TokenIssuer

    settings = stack.settings.model_copy(update={"access_token_ttl": 60})
    issuer = TokenIssuer(keys.load_signing_key(settings), settings)
    token, _ = issuer.issue("0123456789abcdef01234567", Role.STAFF)
    claims = jwt.decode(token, options={"verify_signature": False})
    claims["exp"] = int(time.time()) - 5
    expired = jwt.encode(claims, keys.load_signing_key(settings), algorithm="EdDSA", headers={"kid": issuer.jwk["kid"]})
    response = catalog.post("/products", json={}, headers={"Authorization": f"Bearer {expired}"})
    assert "expired" in assert_problem(response, 401)["detail"]
    good = catalog.post("/products", json={}, headers={"Authorization": f"Bearer {token}"})
    assert good.status_code == 422  # authenticated as staff; the empty body is what fails
