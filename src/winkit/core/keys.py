"""Key material: the user service's Ed25519 signing key and the service-to-service secret.

Dev generates both into the data dir on first start; prod reads them from configuration
and refuses to start without them. Neither is ever committed.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import secrets
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from winkit.core.settings import Settings, secret_value


class KeyConfigurationError(RuntimeError):
    pass


def _write_private(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # O_EXCL: if two processes race on first start, one wins and the other reads its file.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def load_signing_key(settings: Settings) -> Ed25519PrivateKey:
    path = settings.jwt_private_key_file
    if path is None:
        if settings.env == "prod":
            raise KeyConfigurationError("WINKIT_JWT_PRIVATE_KEY_FILE must name a PEM Ed25519 key in prod")
        path = settings.keys_dir / "jwt-ed25519.pem"
        if not path.exists():
            pem = Ed25519PrivateKey.generate().private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
            with contextlib.suppress(FileExistsError):
                _write_private(path, pem)
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyConfigurationError(f"{path} is not an Ed25519 private key")
    return key


def service_secret(settings: Settings) -> str:
    given = secret_value(settings.service_secret, settings.service_secret_file)
    if given is not None:
        return given
    if settings.env == "prod":
        raise KeyConfigurationError("WINKIT_SERVICE_SECRET or WINKIT_SERVICE_SECRET_FILE must be set in prod")
    path = settings.keys_dir / "service-secret"
    if not path.exists():
        with contextlib.suppress(FileExistsError):
            _write_private(path, secrets.token_urlsafe(48).encode())
    return path.read_text().strip()


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def public_jwk(public_key: Ed25519PublicKey) -> dict[str, str]:
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    jwk = {"crv": "Ed25519", "kty": "OKP", "x": _b64url(raw)}
    # RFC 7638 thumbprint: the key id changes exactly when the key does.
    thumbprint = hashlib.sha256(json.dumps(jwk, separators=(",", ":"), sort_keys=True).encode())
    return {**jwk, "kid": _b64url(thumbprint.digest()), "alg": "EdDSA", "use": "sig"}
