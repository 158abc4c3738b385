"""What the gateway costs: GET /products from the catalog directly vs through the gateway.

Starts SecantusDB, NATS, the users and catalog services and the gateway as separate processes
on free loopback ports (the catalog seeds the demo products in dev), then measures both paths
in the same run, interleaved (direct, gateway, direct, gateway, ...), from a separate load
process that holds a fixed number of keep-alive connections:

* throughput: N connections, each sending its next request as soon as its answer is in;
* latency: one connection, so the added time is the gateway's own, not queueing.

Run: .venv/bin/python benchmarks/gateway_overhead.py   (about a minute; also `make bench`)
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import socket
import statistics
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path

from winkit.launcher import Supervisor, http_ok, mongodb_child, nats_child, service_child

_CONTENT_LENGTH = re.compile(rb"\r\ncontent-length: *(\d+)", re.IGNORECASE)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- the load process ----------------------------------------------------------------


async def _connection(port: int, request: bytes, deadline: float, latencies: list[float]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while (started := time.perf_counter()) < deadline:
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = _CONTENT_LENGTH.search(head)
            if not head.startswith(b"HTTP/1.1 200") or length is None:
                raise RuntimeError(f"unexpected answer: {head[:200]!r}")
            await reader.readexactly(int(length.group(1)))
            latencies.append(time.perf_counter() - started)
    finally:
        writer.close()


async def _load(port: int, path: str, connections: int, seconds: float) -> tuple[list[float], float]:
    request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()
    latencies: list[float] = []
    started = time.perf_counter()
    deadline = started + seconds
    await asyncio.gather(*(_connection(port, request, deadline, latencies) for _ in range(connections)))
    return latencies, time.perf_counter() - started


def load(port: int, path: str, connections: int, seconds: float) -> tuple[list[float], float]:
    """Runs in the load process: every request's latency, and the time it all took."""
    import uvloop

    return uvloop.run(_load(port, path, connections, seconds))


# --- the system under test -----------------------------------------------------------


def start_system(supervisor: Supervisor, workdir: Path) -> dict[str, int]:
    ports = {name: free_port() for name in ("mongodb", "nats", "nats_monitor", "users", "catalog", "gateway")}
    env = {
        "WINKIT_ENV": "dev",
        "WINKIT_DATA_DIR": str(workdir / "data"),
        "WINKIT_LOG_LEVEL": "WARNING",
        "WINKIT_MONGODB_URI": f"mongodb://127.0.0.1:{ports['mongodb']}/?directConnection=true&retryWrites=false",
        "WINKIT_NATS_URL": f"nats://127.0.0.1:{ports['nats']}",
        "WINKIT_USERS_URL": f"http://127.0.0.1:{ports['users']}",
        "WINKIT_CATALOG_URL": f"http://127.0.0.1:{ports['catalog']}",
        # One load process, one IP: the limiter still runs on every request, it never trips.
        "WINKIT_GATEWAY_DEFAULT_RATE_LIMIT": "100000000/minute",
    }
    supervisor.start(mongodb_child(ports["mongodb"], workdir / "mongodb"))
    supervisor.start(nats_child(ports["nats"], ports["nats_monitor"], workdir / "nats"))
    for name in ("users", "catalog"):
        supervisor.start(service_child(name, f"winkit.{name}.app:create_app", "127.0.0.1", ports[name], env))
    gateway = service_child("gateway", "winkit.gateway.app:create_app", "127.0.0.1", ports["gateway"], env)
    # Its /health wants all four services; orders and delivery are not part of this run.
    gateway.is_ready = lambda: http_ok(f"http://127.0.0.1:{ports['gateway']}/")
    supervisor.start(gateway)
    return ports


# --- measuring -----------------------------------------------------------------------


@dataclass
class Series:
    """One target's measurements across the rounds of one run."""

    latencies: list[float] = field(default_factory=list)
    rates: list[float] = field(default_factory=list)
    medians: list[float] = field(default_factory=list)

    def add(self, latencies: list[float], seconds: float) -> None:
        self.latencies += latencies
        self.rates.append(len(latencies) / seconds)
        self.medians.append(statistics.median(latencies))

    def percentile_ms(self, q: int) -> float:
        return statistics.quantiles(self.latencies, n=100)[q - 1] * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=1.5, help="per measurement")
    parser.add_argument("--connections", type=int, default=8, help="for the throughput runs")
    args = parser.parse_args()

    runs = {"throughput": args.connections, "latency": 1}
    with tempfile.TemporaryDirectory(prefix="winkit-bench-") as tmp:
        supervisor = Supervisor(Path(tmp) / "logs")
        try:
            print("starting SecantusDB, NATS, users, catalog and the gateway ...", flush=True)
            ports = start_system(supervisor, Path(tmp))
            targets = {
                "direct": (ports["catalog"], "/products"),
                "gateway": (ports["gateway"], "/api/catalog/products"),
            }
            results = {(run, target): Series() for run in runs for target in targets}
            with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as loader:
                for port, path in targets.values():  # warm up pools, caches and the database
                    loader.submit(load, port, path, args.connections, 1.0).result()
                for round_ in range(args.rounds):
                    # Direct first in one round, the gateway first in the next: drift cancels out.
                    order = list(targets) if round_ % 2 == 0 else list(reversed(targets))
                    for run, connections in runs.items():
                        for target in order:
                            port, path = targets[target]
                            latencies, seconds = loader.submit(load, port, path, connections, args.seconds).result()
                            results[run, target].add(latencies, seconds)
                    print(f"round {round_ + 1}/{args.rounds} done", flush=True)
        finally:
            supervisor.stop_all()
    report(results, runs, args)


def report(results: dict[tuple[str, str], Series], runs: dict[str, int], args: argparse.Namespace) -> None:
    print(
        f"\n{time.strftime('%Y-%m-%d')}: GET /products direct vs GET /api/catalog/products through the "
        f"gateway, {args.rounds} interleaved rounds of {args.seconds:g} s, {os.cpu_count()} CPUs\n"
    )
    print(f"{'run':<22}{'target':<9}{'req/s':>7}{'rounds min-max':>16}{'p50 ms':>9}{'p95 ms':>9}")
    for (run, target), series in results.items():
        spread = f"{min(series.rates):.0f}-{max(series.rates):.0f}"
        print(
            f"{f'{run} ({runs[run]} conn)':<22}{target:<9}{statistics.median(series.rates):>7.0f}{spread:>16}"
            f"{series.percentile_ms(50):>9.2f}{series.percentile_ms(95):>9.2f}"
        )
    print("\nCompared round by round (median over the rounds):")
    for run in runs:
        direct, gateway = results[run, "direct"], results[run, "gateway"]
        ratio = statistics.median(g / d for g, d in zip(gateway.rates, direct.rates, strict=True))
        added = statistics.median(g - d for g, d in zip(gateway.medians, direct.medians, strict=True)) * 1000
        print(f"  {run}: gateway/direct throughput {ratio:.0%}, added median latency {added:.2f} ms")


if __name__ == "__main__":
    main()
