"""HTTP load with wrk, read back as JSON through bench/report.lua, with the CPU time that wrk
itself and each server process used during the run (from /proc/<pid>/stat)."""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from bench import stack

HERE = Path(__file__).parent
ROOT = HERE.parent
REPORT_LUA = HERE / "report.lua"


def wrk_binary() -> str | None:
    return shutil.which("wrk")


def wrk_version() -> str | None:
    binary = wrk_binary()
    if binary is None:
        return None
    # `wrk -v` prints its version line and then usage, exiting 1.
    result = subprocess.run([binary, "-v"], capture_output=True, text=True, check=False)
    match = re.search(r"wrk (\S+)", result.stdout + result.stderr)
    return match.group(1) if match else None


def parse_report(output: str) -> dict[str, Any]:
    """The JSON that report.lua's done() prints, from wrk's whole stdout."""
    for line in output.splitlines():
        if line.startswith("WRK_JSON "):
            return json.loads(line.removeprefix("WRK_JSON "))
    raise ValueError(f"no WRK_JSON line in wrk's output:\n{output[-2000:]}")


def run(
    url: str,
    connections: int,
    seconds: float,
    *,
    threads: int = 2,
    watch: dict[str, int] | None = None,
    timeout_s: float = 10.0,
) -> dict[str, Any]:
    """One wrk run against ``url``. wrk needs at least one connection per thread, so fewer
    connections than threads means that many threads. ``watch``: name -> pid of the server
    processes whose CPU time over the run is recorded alongside wrk's own."""
    binary = wrk_binary()
    if binary is None:
        raise RuntimeError("wrk is not installed (apt-get install wrk; `make bench` does it)")
    threads = max(1, min(threads, connections))
    # wrk takes whole seconds only.
    seconds = max(1, round(seconds))
    argv = [binary, f"-t{threads}", f"-c{connections}", f"-d{seconds}s", f"--timeout={round(timeout_s)}s"]
    argv += ["-s", str(REPORT_LUA), url]
    watch = watch or {}
    servers_before = {name: stack.cpu_seconds(pid) for name, pid in watch.items()}
    machine_before = stack.machine_busy_seconds()
    started = time.monotonic()
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    output, errors = _communicate(process)
    wall = time.monotonic() - started
    machine_after = stack.machine_busy_seconds()
    servers_after = {name: stack.cpu_seconds(pid) for name, pid in watch.items()}
    # The zombie's /proc/<pid>/stat still holds its final CPU times: read them, then reap.
    wrk_cpu = stack.cpu_seconds(process.pid)
    _, status, _usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited with {process.returncode}: {(errors or output).strip()[-2000:]}")
    report = parse_report(output)
    measured = report["duration_us"] / 1e6
    return {
        "url": url,
        "threads": threads,
        "connections": connections,
        "seconds": seconds,
        **report,
        "req_per_s_2xx": report["ok_2xx"] / measured,
        "bytes_per_response": report["bytes"] / report["requests"] if report["requests"] else None,
        "wall_s": wall,
        "wrk_cpu_s": wrk_cpu,
        "server_cpu_s": {name: servers_after[name] - servers_before[name] for name in watch},
        "machine_busy_cpu_s": machine_after[0] - machine_before[0],
        "machine_cpu_s": machine_after[1] - machine_before[1],
    }


def _communicate(process: subprocess.Popen[str]) -> tuple[str, str]:
    """Read wrk's output to the end and wait for it to exit WITHOUT reaping it, so that its
    /proc/<pid>/stat (the CPU it used) can still be read."""
    assert process.stdout is not None
    assert process.stderr is not None
    output = process.stdout.read()
    errors = process.stderr.read()
    os.waitid(os.P_PID, process.pid, os.WEXITED | os.WNOWAIT)
    return output, errors


# --- the bare ASGI app ----------------------------------------------------------------


def record_responses(base_url: str, paths: list[str], target: Path) -> dict[str, dict[str, Any]]:
    """Fetch each path once from the real service and store status, headers and body for
    the bare app to replay."""
    recorded = {}
    with httpx.Client(base_url=base_url, timeout=30) as client:
        for path in paths:
            response = client.get(path)
            if response.status_code != 200:
                raise RuntimeError(f"GET {base_url}{path} answered {response.status_code}: {response.text[:300]}")
            recorded[path] = {
                "status": response.status_code,
                "headers": list(response.headers.multi_items()),
                "body_b64": base64.b64encode(response.content).decode(),
            }
    target.write_text(json.dumps(recorded))
    return recorded


def bare_argv(port: int, extra: tuple[str, ...] = ()) -> list[str]:
    """uvicorn with the options the services run with (winkit.launcher.service_child), for
    bench.bare; ``--app-dir`` makes the bench package importable under ``python -P``."""
    options = ("--app-dir", str(ROOT), *extra)
    try:
        from winkit.launcher import service_child

        return service_child("bare", "bench.bare:create_app", "127.0.0.1", port, {}, extra=options).argv
    except (ImportError, TypeError):  # pragma: no cover - launcher changed: the same options by hand
        argv = [sys.executable, "-P", "-m", "uvicorn", "bench.bare:create_app", "--factory"]
        return [
            *argv,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--no-access-log",
            "--log-level",
            "warning",
            *options,
        ]


def start_bare(responses_file: Path, port: int, log: Path, extra: tuple[str, ...] = ()) -> subprocess.Popen[bytes]:
    env = {**os.environ, "BENCH_BARE_RESPONSES": str(responses_file)}
    with log.open("ab") as out:
        process = subprocess.Popen(bare_argv(port, extra), env=env, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the bare ASGI app exited with {process.returncode}; see {log}")
        try:
            httpx.get(f"http://127.0.0.1:{port}/", timeout=0.5)
            return process
        except httpx.HTTPError:
            time.sleep(0.05)
    process.kill()
    raise RuntimeError("the bare ASGI app did not start within 30 s")
