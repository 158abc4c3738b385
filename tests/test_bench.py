"""The benchmark harness (bench/, `make bench`): its report renders from a result, and wrk's
Lua report parses. No load is generated here and no stack is started."""

from __future__ import annotations

import base64
import json
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest
from harness import free_port

ROOT = Path(__file__).parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import render, wrk  # noqa: E402

PATHS = ["GET /products", "GET /products/{id}", "GET /categories"]
# req/s per (target, connections): the gateway falls under 70% of direct at -c8.
RATES = {("bare", 1): 400, ("bare", 8): 800, ("direct", 1): 300, ("direct", 8): 600}
RATES |= {("gateway", 1): 280, ("gateway", 8): 380}


def _percentiles(p50_ms: float) -> dict[str, float]:
    points = {str(p): p50_ms * 1000 * (0.5 + p / 100) for p in range(1, 100)}
    points |= {"99.5": p50_ms * 3000, "99.9": p50_ms * 4000, "99.99": p50_ms * 5000}
    return points


def _latency_summary(p50: float) -> dict[str, Any]:
    points = {str(p): p50 * (0.5 + p / 100) for p in range(1, 100)} | {"99.9": p50 * 3, "100": p50 * 4}
    return {"count": 200, "p50": p50, "p90": p50 * 1.4, "p99": p50 * 1.49, "max": p50 * 4, "percentiles": points}


def sample_result() -> dict[str, Any]:
    runs = []
    for round_ in range(2):
        for level in (1, 8):
            for path in PATHS:
                for target in ("bare", "direct", "gateway"):
                    rate = RATES[target, level] * (1 + round_ / 20)
                    runs.append(
                        {
                            "round": round_,
                            "path": path,
                            "target": target,
                            "connections": level,
                            "threads": min(2, level),
                            "requests": int(rate * 5),
                            "ok_2xx": int(rate * 5),
                            "non_2xx_3xx": 0,
                            "errors": {"connect": 0, "read": 0, "write": 0, "status": 0, "timeout": 0},
                            "latency_percentiles_us": _percentiles(level / rate * 1000),
                            "req_per_s_2xx": rate,
                            "bytes_per_response": 400.0,
                            "wall_s": 5.0,
                            "wrk_cpu_s": 0.2,
                            "server_cpu_s": {"catalog": 3.0, "secantusdb": 2.0},
                            "machine_busy_cpu_s": 9.0,
                        }
                    )
    memory = {"catalog": {"rss_kb": 80000, "pss_kb": 55000}, "secantusdb": {"rss_kb": 52000, "pss_kb": 30000}}
    return {
        "schema": 1,
        "started_utc": "2026-01-01T00:00:00+00:00",
        "quick": False,
        "machine": {"cpu_model": "Test CPU", "cores": 2, "usable_cores": 2, "memory_mb": 4096, "python": "3.11.7"},
        "load_average_before": [0.5, 0.4, 0.3],
        "load_average_after": [1.5, 0.9, 0.5],
        "startup": {"seconds": 7.5, "gateway_health_status": 200, "spawned_after_s": {"secantusdb": 0.1}},
        "idle_memory": {"processes": memory, "total_rss_kb": 132000, "total_pss_kb": 85000},
        "memory_after_load": {"processes": memory, "total_rss_kb": 132000},
        "http": {
            "paths": [{"label": label, "path": label.split()[1]} for label in PATHS],
            "levels": [1, 8],
            "seconds": 5,
            "rounds": 2,
            "threads": 2,
            "warmup_s": 1,
            "first_answers": {label: {"bare": {"bytes": 400}, "direct": {"bytes": 400}} for label in PATHS},
            "runs": runs,
        },
        "checkout": {
            "shoppers": 16,
            "seconds": 20.0,
            "elapsed_s": 20.5,
            "orders": 500,
            "failed_by_status": {},
            "orders_per_s": 24.4,
            "order_create": _latency_summary(400.0),
            "cart_add": _latency_summary(200.0),
            "add_and_create": _latency_summary(600.0),
            "generator_cpu_s": 2.0,
            "generator_cpu_cores": 0.1,
            "server_cpu_s": {"orders": 10.0, "secantusdb": 12.0},
            "db_ops": {
                "available": True,
                "method": "serverStatus",
                "per_order": {"insert": 9.0},
                "total_per_order": 9.0,
            },
        },
        "visibility": [
            {"shoppers": 1, "poll_interval_ms": 2.0, "placed_to_readable": _latency_summary(15.0), "timeouts": 0},
            {"shoppers": 4, "poll_interval_ms": 2.0, "placed_to_readable": _latency_summary(30.0), "timeouts": 0},
        ],
        "stop": {"exit_code": 0, "seconds": 4.0},
        "wall_seconds": 400.0,
    }


def test_the_report_renders_with_plots_and_keeps_explanations(tmp_path):
    result_file = tmp_path / "results" / "20260101T000000Z.json"
    result_file.parent.mkdir()
    result_file.write_text(json.dumps(sample_result()))
    assert render.newest_result(result_file.parent) == result_file
    doc = tmp_path / "benchmarks.md"
    notes = {"gateway-vs-direct": "The sample's gateway is slow on purpose.", "about": "General notes."}

    plots = render.render(json.loads(result_file.read_text()), doc, result_file.name, notes)

    text = doc.read_text()
    assert {p.name for p in plots} == {"throughput.png", "latency-c8.png", "checkout.png", "placed-to-readable.png"}
    for plot in plots:
        assert plot.parent == tmp_path / "benchmarks"
        assert plot.read_bytes().startswith(b"\x89PNG")
        assert f"](benchmarks/{plot.name})" in text
    # Missed targets get a marker and the hand-written why; met ones get neither.
    assert "<!-- explain: gateway-vs-direct -->\nThe sample's gateway is slow on purpose." in text
    assert "<!-- explain: readable-p50-at-4 -->" in text
    assert "add a `## readable-p50-at-4` section" in text
    assert "<!-- explain: startup -->" not in text
    assert "<!-- explain: direct-vs-bare -->" not in text
    assert "General notes." in text
    assert "| `GET /products` | 8 | 820 | 615 | 390 |" in text  # medians over the two rounds


@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed (`make bench` installs it)")
def test_wrk_reports_json_and_counts_only_2xx(tmp_path):
    body = b'{"ok": true}'
    responses = tmp_path / "responses.json"
    recorded = {"headers": [["content-type", "application/json"]], "body_b64": base64.b64encode(body).decode()}
    responses.write_text(json.dumps({"/ok": {"status": 200, **recorded}}))
    port = free_port()
    bare = wrk.start_bare(responses, port, tmp_path / "bare.log")
    try:
        ok = wrk.run(f"http://127.0.0.1:{port}/ok", 2, 1, watch={"bare": bare.pid})
        missing = wrk.run(f"http://127.0.0.1:{port}/missing", 1, 1)
    finally:
        bare.terminate()
        bare.wait(timeout=15)
    assert ok["requests"] > 0
    assert ok["ok_2xx"] == ok["requests"]
    assert ok["non_2xx_3xx"] == 0
    assert ok["bytes_per_response"] > len(body)
    assert 0 < ok["latency_percentiles_us"]["50"] <= ok["latency_percentiles_us"]["99"]
    assert set(ok["server_cpu_s"]) == {"bare"}
    assert ok["wrk_cpu_s"] >= 0
    assert missing["requests"] > 0
    assert missing["ok_2xx"] == 0
    assert missing["non_2xx_3xx"] == missing["requests"]
