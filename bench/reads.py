"""Catalog reads with wrk: a bare ASGI app, the catalog directly, and through the gateway.

For each path the bare app replays the exact bytes (and headers) the catalog answered.
Per connection level and path, the three targets run back to back (their order rotating
from one round and path to the next), so each comparison shares the machine's state;
several rounds spread each comparison over time.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx

from bench import stack, wrk
from bench.analysis import TARGETS


def catalog_paths(catalog_url: str) -> list[dict[str, str]]:
    """The three reads: the product list, one product, the categories."""
    products = httpx.get(f"{catalog_url}/products", timeout=30)
    products.raise_for_status()
    first = products.json()[0]["id"]
    return [
        {"label": "GET /products", "path": "/products"},
        {"label": "GET /products/{id}", "path": f"/products/{first}"},
        {"label": "GET /categories", "path": "/categories"},
    ]


def target_urls(running: stack.Stack, bare_port: int, path: str) -> dict[str, str]:
    return {
        "bare": f"http://127.0.0.1:{bare_port}{path}",
        "direct": f"{running.url('catalog')}{path}",
        "gateway": f"{running.url('gateway')}/api/catalog{path}",
    }


def check_answers(urls: dict[str, str]) -> dict[str, dict[str, Any]]:
    """Every target answers 200 (not a redirect: wrk would count a 3xx as a success)."""
    seen = {}
    for target, url in urls.items():
        response = httpx.get(url, timeout=30, follow_redirects=False)
        if response.status_code != 200:
            raise RuntimeError(f"{target} {url} answered {response.status_code}: {response.text[:300]}")
        seen[target] = {"status": response.status_code, "bytes": len(response.content)}
    return seen


def _alive(watch: dict[str, int]) -> dict[str, bool]:
    return {name: Path(f"/proc/{pid}").exists() for name, pid in watch.items()}


def _run(
    url: str, level: int, seconds: float, threads: int, watch: dict[str, int], running: stack.Stack, log: Any
) -> dict[str, Any]:
    """One wrk run; a failed one is retried once (after saying which processes still run),
    since a shared machine may have a moment's hiccup; the retry is recorded."""
    try:
        return wrk.run(url, level, seconds, threads=threads, watch=watch)
    except RuntimeError as first:
        alive = _alive(watch)
        log(f"wrk failed ({first}); alive: {alive}; `winkit run` exit code: {running.process.poll()}")
        if running.process.poll() is not None or not all(alive.values()):
            raise
        time.sleep(2.0)
        return {**wrk.run(url, level, seconds, threads=threads, watch=watch), "retried_after": str(first)}


def measure(
    running: stack.Stack,
    work_dir: Path,
    levels: list[int],
    seconds: float,
    rounds: int,
    warmup_s: float,
    threads: int = 2,
    log: Any = print,
) -> dict[str, Any]:
    paths = catalog_paths(running.url("catalog"))
    responses_file = work_dir / "bare-responses.json"
    wrk.record_responses(running.url("catalog"), [p["path"] for p in paths], responses_file)
    bare_port = stack.free_port()
    bare = wrk.start_bare(responses_file, bare_port, work_dir / "bare.log")
    try:
        watch = {**running.processes(), "bare ASGI app": bare.pid}
        answers = {}
        for path in paths:
            answers[path["label"]] = check_answers(target_urls(running, bare_port, path["path"]))
        log(f"warming up: {len(paths) * len(TARGETS)} targets, {warmup_s:g} s each")
        for path in paths:
            for url in target_urls(running, bare_port, path["path"]).values():
                wrk.run(url, max(levels), warmup_s, threads=threads)
        runs = []
        total = rounds * len(levels) * len(paths) * len(TARGETS)
        started = time.monotonic()
        for round_ in range(rounds):
            for level_index, level in enumerate(levels):
                for path_index, path in enumerate(paths):
                    shift = (round_ + level_index + path_index) % len(TARGETS)
                    order = TARGETS[shift:] + TARGETS[:shift]
                    urls = target_urls(running, bare_port, path["path"])
                    for target in order:
                        result = _run(urls[target], level, seconds, threads, watch, running, log)
                        runs.append(
                            {"round": round_, "path": path["label"], "target": target, "order": list(order), **result}
                        )
                    done = len(runs)
                    rates = ", ".join(f"{r['target']} {r['req_per_s_2xx']:.0f}" for r in runs[-len(TARGETS) :])
                    log(
                        f"[{done}/{total}, {time.monotonic() - started:.0f} s] round {round_ + 1} -c{level} "
                        f"{path['label']}: {rates} req/s"
                    )
    finally:
        bare.terminate()
        bare.wait(timeout=15)
    return {
        "paths": paths,
        "levels": levels,
        "seconds": seconds,
        "rounds": rounds,
        "threads": threads,
        "warmup_s": warmup_s,
        "first_answers": answers,
        "watched_processes": sorted(watch),
        "runs": runs,
    }
