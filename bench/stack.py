"""The system under test: `winkit run` (what `make run` starts) as a subprocess, isolated.

Every port and service URL setting gets a free loopback port, the data dir is a temporary
directory, and the gateway's rate limits are raised (one load generator is one client IP
and a handful of users). Also: the process tree read from /proc (names, RSS, CPU times).
"""

from __future__ import annotations

import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

SERVICES = ("users", "catalog", "orders", "delivery")
# Port settings that name a port something listens on (smtp_port is where mail goes).
NOT_LISTENING = {"smtp_port"}
# High enough that no limiter ever trips during a run; each still counts every request.
NO_LIMIT = "1000000000/minute"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_settings() -> list[str]:
    """Every ``*_port`` setting of winkit's Settings (so new ones, such as Envoy's admin and
    metrics ports, get a free port too), plus the ones this harness knows about."""
    known = {
        "embedded_mongodb_port",
        "embedded_nats_port",
        "embedded_nats_monitor_port",
        "gateway_port",
        "gateway_app_port",
        "gateway_admin_port",
        "gateway_metrics_port",
        "app_port",
    }
    try:
        from winkit.core.settings import Settings

        known |= {name for name in Settings.model_fields if name.endswith("_port")}
    except ImportError:  # pragma: no cover - winkit not installed: the known list
        pass
    return sorted(known - NOT_LISTENING)


def isolated_env(data_dir: Path) -> tuple[dict[str, str], dict[str, int]]:
    """The environment for an isolated `winkit run`, and the port of every part."""
    ports = {name.removesuffix("_port"): free_port() for name in port_settings()}
    ports |= {name: free_port() for name in SERVICES}
    variables = {
        "WINKIT_ENV": "dev",
        "WINKIT_DATA_DIR": str(data_dir),
        # The default level: every request's access line is written, as in production.
        "WINKIT_LOG_LEVEL": "INFO",
        **{f"WINKIT_{name.upper()}": str(ports[name.removesuffix("_port")]) for name in port_settings()},
        **{f"WINKIT_{name.upper()}_URL": f"http://127.0.0.1:{ports[name]}" for name in SERVICES},
        "WINKIT_GATEWAY_DEFAULT_RATE_LIMIT": NO_LIMIT,
        "WINKIT_GATEWAY_AUTH_RATE_LIMIT": NO_LIMIT,
        "WINKIT_SIGN_IN_RATE_LIMIT": NO_LIMIT,
    }
    clean = {k: v for k, v in os.environ.items() if not k.startswith("WINKIT_")}
    return {**clean, **variables}, ports


# --- /proc ---------------------------------------------------------------------------


def _stat_fields(pid: int) -> list[str]:
    raw = Path(f"/proc/{pid}/stat").read_text()
    # comm (field 2) may hold spaces and parentheses: split after its closing one.
    return raw[raw.rindex(")") + 2 :].split()


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all its threads), in seconds; 0 once it is gone."""
    try:
        fields = _stat_fields(pid)
    except (OSError, ValueError):
        return 0.0
    # After comm: state(3) ppid(4) ... utime(14) stime(15): indexes 11 and 12 here.
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def start_ticks(pid: int) -> int | None:
    """When the process started, in clock ticks since boot (field 22 of /proc/<pid>/stat)."""
    try:
        return int(_stat_fields(pid)[19])
    except (OSError, ValueError, IndexError):
        return None


def parent_of(pid: int) -> int | None:
    try:
        return int(_stat_fields(pid)[1])
    except (OSError, ValueError, IndexError):
        return None


def descendants(root: int) -> list[int]:
    """``root`` and every process under it (children run in their own sessions, but
    remain children of the supervisor)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (parent := parent_of(int(entry.name))) is not None:
            parents[int(entry.name)] = parent
    tree, frontier = [root], [root]
    while frontier:
        current = frontier.pop()
        children = sorted(pid for pid, parent in parents.items() if parent == current)
        tree += children
        frontier += children
    return tree


def command_line(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")[:-1]
    except OSError:
        return []


def process_name(argv: list[str]) -> str:
    """A short name for a part of the stack, from its command line."""
    joined = " ".join(argv)
    for part in (*SERVICES, "gateway", "app"):
        if f"winkit.{part}.app:create_app" in joined:
            return part
    if "bench.bare" in joined:
        return "bare ASGI app"
    if "secantus" in joined:
        return "secantusdb"
    if argv and Path(argv[0]).name == "nats-server":
        return "nats-server"
    if argv and Path(argv[0]).name == "envoy":
        return "envoy"
    if any(Path(arg).name == "winkit" for arg in argv[:2]) and "run" in argv:
        return "winkit run"
    return Path(argv[0]).name if argv else "?"


def memory_kb(pid: int) -> dict[str, int]:
    """VmRSS and (where readable) Pss of a process, in KiB."""
    found = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                found["rss_kb"] = int(line.split()[1])
    except OSError:
        return {}
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                found["pss_kb"] = int(line.split()[1])
    except OSError:
        pass
    return found


def machine_busy_seconds() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine so far, all cores, from /proc/stat."""
    fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    total = sum(fields[:8])  # guest time is already counted in user
    return (total - idle) / CLOCK_TICKS, total / CLOCK_TICKS


def load_average() -> list[float]:
    return [float(v) for v in Path("/proc/loadavg").read_text().split()[:3]]


# --- the stack -----------------------------------------------------------------------


@dataclass
class Stack:
    """A running `winkit run`: its ports, its process tree, how long it took to come up."""

    process: subprocess.Popen[str]
    ports: dict[str, int]
    data_dir: Path
    startup_seconds: float
    output: list[str] = field(default_factory=list)

    def url(self, part: str) -> str:
        return f"http://127.0.0.1:{self.ports[part]}"

    def processes(self) -> dict[str, int]:
        """name -> pid for every process of the stack (a repeated name gets #2, #3 ...)."""
        named: dict[str, int] = {}
        for pid in descendants(self.process.pid):
            name = process_name(command_line(pid))
            unique, n = name, 1
            while unique in named:
                n += 1
                unique = f"{name} #{n}"
            named[unique] = pid
        return named

    def staff_login(self) -> tuple[str, str]:
        """The dev staff account, as `winkit run` prints it ("Dev staff login: EMAIL / PASSWORD")."""
        for line in self.output:
            if match := re.search(r"Dev staff login: (\S+) / (\S+)", line):
                return match.group(1), match.group(2)
        raise RuntimeError("`winkit run` did not print the dev staff login")

    def spawn_offsets(self) -> dict[str, float]:
        """Seconds from the supervisor's start to each part's (the supervisor starts each
        part once the one before it is ready), from /proc start times."""
        root = start_ticks(self.process.pid)
        offsets = {}
        for name, pid in self.processes().items():
            ticks = start_ticks(pid)
            if root is not None and ticks is not None:
                offsets[name] = (ticks - root) / CLOCK_TICKS
        return dict(sorted(offsets.items(), key=lambda kv: kv[1]))

    def memory(self) -> dict[str, dict[str, int]]:
        return {name: memory_kb(pid) for name, pid in self.processes().items()}

    def stop(self) -> int | None:
        """SIGINT (Ctrl-C), as a user stops `make run`; SIGKILL if it hangs."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=40)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


def log_tails(data_dir: Path, lines: int = 15) -> str:
    """The last lines of every part's log, for a failure message (the data dir is temporary)."""
    found = []
    for log in sorted((data_dir / "logs").glob("*.log")):
        tail = log.read_text(errors="replace").splitlines()[-lines:]
        if tail:
            found.append(f"--- {log.name} (last {len(tail)} lines)\n" + "\n".join(tail))
    return "\n" + "\n".join(found) if found else ""


def winkit_command() -> list[str]:
    return [str(Path(sys.executable).parent / "winkit"), "run"]


def start(data_dir: Path, timeout: float = 180.0) -> Stack:
    """`winkit run`, returned once it prints "is up"; startup_seconds is the time from
    spawning it to that line (everything started and healthy)."""
    env, ports = isolated_env(data_dir)
    started = time.monotonic()
    process = subprocess.Popen(
        winkit_command(), env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
    )
    lines: queue.Queue[str | None] = queue.Queue()
    output: list[str] = []

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            output.append(line)
            lines.put(line)
        lines.put(None)

    threading.Thread(target=read, daemon=True, name="winkit-run-output").start()
    deadline = started + timeout
    try:
        while True:
            try:
                line = lines.get(timeout=max(deadline - time.monotonic(), 0.01))
            except queue.Empty:
                raise RuntimeError(f"winkit run was not up within {timeout:.0f} s:\n{''.join(output)}") from None
            if line is None:
                raise RuntimeError(
                    f"winkit run ended early with {process.wait()}:\n{''.join(output)}{log_tails(data_dir)}"
                )
            if "is up" in line:
                return Stack(process, ports, data_dir, time.monotonic() - started, output)
    except BaseException:
        if process.poll() is None:
            process.kill()
            process.wait()
        raise
