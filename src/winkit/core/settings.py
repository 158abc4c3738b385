"""Configuration from the environment (prefix ``WINKIT_``), one object for every service."""

from __future__ import annotations

import re
from functools import cached_property
from ipaddress import IPv4Network, IPv6Network
from pathlib import Path
from typing import Annotated, Literal, get_args

from pydantic import Field, IPvAnyNetwork, SecretStr, StringConstraints, computed_field
from pydantic_settings import BaseSettings, SettingsConfigDict

ServiceName = Literal["users", "catalog", "orders", "delivery"]

# "600/minute": so many requests per second, minute, hour or day.
RATE_LIMIT_PATTERN = r"^\s*([1-9][0-9]*)\s*/\s*(second|minute|hour|day)\s*$"
RateLimit = Annotated[str, StringConstraints(pattern=RATE_LIMIT_PATTERN)]
_RATE_LIMIT_UNITS = {"second": 1, "minute": 60, "hour": 3600, "day": 86_400}


def parse_rate_limit(text: str) -> tuple[int, int]:
    """``"600/minute"`` as (600, 60): so many requests per so many seconds."""
    match = re.fullmatch(RATE_LIMIT_PATTERN, text)
    if match is None:
        raise ValueError(f"not a rate like '600/minute': {text!r}")
    return int(match[1]), _RATE_LIMIT_UNITS[match[2]]


def secret_value(value: SecretStr | None, file: Path | None) -> str | None:
    """A secret given in the environment, or else in a file (a mounted Kubernetes or
    Compose secret), without its trailing newline."""
    if value is not None:
        return value.get_secret_value()
    if file is not None:
        return file.read_text().strip()
    return None


# The four services, in the order `winkit run` starts them, and their default ports.
SERVICE_NAMES: tuple[ServiceName, ...] = get_args(ServiceName)
SERVICE_PORTS: dict[ServiceName, int] = {"users": 8001, "catalog": 8002, "orders": 8003, "delivery": 8004}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="WINKIT_", extra="ignore", frozen=True)

    env: Literal["dev", "prod"] = "dev"
    data_dir: Path = Path("var")
    host: str = "127.0.0.1"
    log_level: str = "INFO"

    # Databases: one per service. Each service URI falls back to mongodb_uri; with neither set,
    # `winkit run` starts the embedded SecantusDB on embedded_mongodb_port.
    mongodb_uri: str | None = None
    users_mongodb_uri: str | None = None
    catalog_mongodb_uri: str | None = None
    orders_mongodb_uri: str | None = None
    delivery_mongodb_uri: str | None = None
    embedded_mongodb_port: int = 27017
    # Credentials given beside the URI, so the URI (hosts, replica set, TLS) can be shared
    # while each service signs in as its own database user with rights to its own database.
    mongodb_username: str | None = None
    mongodb_password: SecretStr | None = None
    mongodb_password_file: Path | None = None

    # Event bus. Unset: `winkit run` starts the embedded nats-server on embedded_nats_port.
    nats_url: str | None = None
    embedded_nats_port: int = 4222
    embedded_nats_monitor_port: int = 8222
    nats_connect_timeout: float = 2.0
    # Copies of the event stream kept by a NATS cluster (1 on one machine, 3 in k8s).
    nats_stream_replicas: int = Field(default=1, ge=1, le=5)

    # Where services reach each other (server to server).
    users_url: str = "http://127.0.0.1:8001"
    catalog_url: str = "http://127.0.0.1:8002"
    orders_url: str = "http://127.0.0.1:8003"
    delivery_url: str = "http://127.0.0.1:8004"

    # API gateway: Envoy, the one public front door, and its small Python app behind it
    # (the aggregated /health and the combined /docs).
    gateway_port: int = 8000
    gateway_app_port: int = 8005
    # Envoy's admin interface (loopback only) and its statistics for Prometheus.
    gateway_admin_port: int = 9901
    gateway_metrics_port: int = 9102
    gateway_max_body_bytes: int = Field(default=1_048_576, ge=1024)
    gateway_upstream_timeout: float = Field(default=15.0, gt=0)
    # A client gets this long to send its headers, and its whole request.
    gateway_request_headers_timeout: float = Field(default=10.0, gt=0)
    gateway_request_timeout: float = Field(default=30.0, gt=0)
    gateway_max_connections: int = Field(default=10_000, ge=1)
    # X-Forwarded-For is believed only from these (the app server, an ingress).
    gateway_trusted_proxies: list[IPvAnyNetwork] = [IPv4Network("127.0.0.1/32"), IPv6Network("::1/128")]
    # Per client IP on sign-in routes; per client IP and per user everywhere.
    gateway_auth_rate_limit: RateLimit = "10/minute"
    gateway_default_rate_limit: RateLimit = "600/minute"
    # Per account email on login and one-time codes, counted by the user service in its
    # database (so it holds across replicas and for direct callers).
    sign_in_rate_limit: RateLimit = "10/minute"

    # Tokens: EdDSA access tokens signed by the user service, verified everywhere from its JWKS.
    jwt_issuer: str = "winkit-users"
    jwt_audience: str = "winkit"
    access_token_ttl: int = Field(default=3600, ge=60, le=86400)
    jwt_private_key_file: Path | None = None
    jwks_url: str | None = None
    jwks_cache_seconds: int = 300
    # Service-to-service calls (orders -> catalog stock reservations) carry a short-lived
    # HS256 token signed with this secret; dev generates one into the data dir.
    service_secret: SecretStr | None = None
    service_secret_file: Path | None = None

    # Where browsers reach the API (e.g. https://shop.example/api), for links such as image
    # URLs; unset, the gateway of this machine. Never taken from a request's Host.
    public_api_url: str | None = None

    # The app (Flet web UI): its port, and the API it talks to (the gateway by default).
    app_port: int = 8080
    app_api_url: str | None = None

    # Browser origins allowed to call the APIs: the app, by either loopback name.
    cors_origins: list[str] = ["http://localhost:8080", "http://127.0.0.1:8080"]

    # One-time codes and mail.
    otp_ttl: int = 300
    otp_max_attempts: int = 5
    otp_resend_cooldown: int = 30
    smtp_host: str | None = None
    smtp_port: int = 587
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_password_file: Path | None = None
    smtp_starttls: bool = True
    mail_from: str = "Winkit <no-reply@winkit.local>"

    # None: seed the demo catalog into an empty database in dev, never in prod.
    seed_demo_catalog: bool | None = None

    # Money is integer paise everywhere.
    delivery_fee_paise: int = Field(default=2500, ge=0)
    free_delivery_threshold_paise: int = Field(default=19900, ge=0)
    reservation_timeout: int = Field(default=60, ge=5)
    # Every order promises delivery this many minutes after it is placed.
    delivery_promise_minutes: int = Field(default=10, ge=1, le=240)
    # Live streams (server-sent events) send a heartbeat, and re-check what they show,
    # when nothing happened for this long.
    sse_heartbeat_seconds: float = Field(default=15.0, gt=0, le=60)

    @computed_field  # type: ignore[prop-decorator]
    @cached_property
    def embedded_mongodb_uri(self) -> str:
        # SecantusDB: one-member replica set; retryWrites=false keeps inserts fast there.
        return f"mongodb://127.0.0.1:{self.embedded_mongodb_port}/?directConnection=true&retryWrites=false"

    def mongodb_uri_for(self, service: ServiceName) -> str:
        specific = getattr(self, f"{service}_mongodb_uri")
        return specific or self.mongodb_uri or self.embedded_mongodb_uri

    def uses_embedded_mongodb(self) -> bool:
        return any(self.mongodb_uri_for(s) == self.embedded_mongodb_uri for s in SERVICE_NAMES)

    @property
    def effective_nats_url(self) -> str:
        return self.nats_url or f"nats://127.0.0.1:{self.embedded_nats_port}"

    @property
    def effective_jwks_url(self) -> str:
        return self.jwks_url or f"{self.users_url}/.well-known/jwks.json"

    @property
    def effective_public_api_url(self) -> str:
        return (self.public_api_url or f"http://{self.host}:{self.gateway_port}/api").rstrip("/")

    @property
    def effective_app_api_url(self) -> str:
        return self.app_api_url or f"http://{self.host}:{self.gateway_port}/api"

    @property
    def keys_dir(self) -> Path:
        return self.data_dir / "keys"

    def service_url(self, service: ServiceName) -> str:
        url: str = getattr(self, f"{service}_url")
        return url

    def effective_mongodb_password(self) -> str | None:
        return secret_value(self.mongodb_password, self.mongodb_password_file)

    def effective_smtp_password(self) -> str | None:
        return secret_value(self.smtp_password, self.smtp_password_file)

    @staticmethod
    def database_name(service: ServiceName) -> str:
        return f"winkit_{service}"
