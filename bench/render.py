"""Renders docs/benchmarks.md (and its plots, docs/benchmarks/*.png) from a result file.

The explanations of missed targets are written by hand in bench/notes.md, one
``## target-name`` section each (and ``## about`` for general notes): the renderer copies
them in after each ``<!-- explain: target-name -->`` marker, so re-rendering keeps them.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

from bench import analysis

HERE = Path(__file__).parent
NOTES = HERE / "notes.md"
COLOURS = {"bare": "#7f7f7f", "direct": "#1f77b4", "gateway": "#d62728"}


# --- inputs -------------------------------------------------------------------------------


def newest_result(directory: Path) -> Path | None:
    """The newest result file (names are UTC timestamps, so the last in sort order)."""
    files = sorted(directory.glob("*.json")) if directory.is_dir() else []
    return files[-1] if files else None


def read_notes(path: Path = NOTES) -> dict[str, str]:
    """``## name`` sections of the notes file -> their text."""
    if not path.exists():
        return {}
    sections: dict[str, str] = {}
    name = None
    lines: list[str] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        heading = re.match(r"^## +(\S+)\s*$", line)
        if heading:
            if name is not None:
                sections[name] = "\n".join(lines).strip()
            name, lines = heading.group(1), []
        elif name is not None:
            lines.append(line)
    if name is not None:
        sections[name] = "\n".join(lines).strip()
    return {key: text for key, text in sections.items() if text}


# --- plots --------------------------------------------------------------------------------


def _nines(p: float) -> float:
    """x position of percentile p on a 'nines' axis: p50 at 0.3, p90 at 1, p99 at 2, p99.9 at 3."""
    return -math.log10(1 - min(p, 99.99) / 100)


def _percentile_axis(ax: Any, highest: float = 99.99) -> None:
    ticks = [p for p in (50, 90, 99, 99.9) if p <= highest]
    ax.set_xticks([_nines(p) for p in ticks])
    ax.set_xticklabels([f"p{p:g}" for p in ticks])
    ax.set_xlim(0, _nines(highest))
    ax.grid(True, which="both", alpha=0.3)


def _curve(points: dict[str, float | None], scale: float = 1.0) -> tuple[list[float], list[float]]:
    pairs = sorted((float(p), v * scale) for p, v in points.items() if v is not None and float(p) < 100)
    return [_nines(p) for p, _ in pairs], [v for _, v in pairs]


def plot_throughput(result: dict[str, Any], target: Path) -> None:
    import matplotlib.pyplot as plt

    rows = analysis.http_table(result)
    paths = [p["label"] for p in result["http"]["paths"]]
    fig, axes = plt.subplots(1, len(paths), figsize=(5 * len(paths), 4), squeeze=False)
    for ax, path in zip(axes[0], paths, strict=True):
        mine = [r for r in rows if r["path"] == path]
        levels = [r["connections"] for r in mine]
        for name in analysis.TARGETS:
            values = [r[name]["req_per_s"] for r in mine]
            ax.plot(levels, values, marker="o", label=name, color=COLOURS[name])
            for r in mine:  # every round's value, to show the spread
                ax.scatter(
                    [r["connections"]] * len(r[name]["req_per_s_all"]),
                    r[name]["req_per_s_all"],
                    s=8,
                    color=COLOURS[name],
                    alpha=0.4,
                )
        ax.set_xscale("log", base=2)
        ax.set_xticks(levels)
        ax.set_xticklabels([str(level) for level in levels])
        ax.set_yscale("log")
        ax.set_title(path)
        ax.set_xlabel("connections (wrk -c)")
        ax.set_ylabel("requests/s (2xx), log scale")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    fig.suptitle("Throughput: bare ASGI app vs catalog directly vs through the gateway (medians over rounds)")
    fig.tight_layout()
    fig.savefig(target, dpi=100)
    plt.close(fig)


def latency_level(result: dict[str, Any]) -> int:
    """The connection level whose latency distributions are plotted: 8 if measured, else
    the middle one."""
    levels = result["http"]["levels"]
    return 8 if 8 in levels else levels[len(levels) // 2]


def plot_latency(result: dict[str, Any], level: int, target: Path) -> None:
    import matplotlib.pyplot as plt

    paths = [p["label"] for p in result["http"]["paths"]]
    grouped = analysis.runs_by(result)
    fig, axes = plt.subplots(1, len(paths), figsize=(5 * len(paths), 4), squeeze=False)
    for ax, path in zip(axes[0], paths, strict=True):
        for name in analysis.TARGETS:
            for i, run in enumerate(grouped.get((path, level, name), [])):
                xs, ys = _curve(run["latency_percentiles_us"], 1 / 1000)
                ax.plot(xs, ys, color=COLOURS[name], alpha=0.9 if i == 0 else 0.45, label=name if i == 0 else None)
        _percentile_axis(ax)
        ax.set_yscale("log")
        ax.set_title(f"{path}, -c{level}")
        ax.set_xlabel("percentile")
        ax.set_ylabel("latency, ms (log scale)")
        ax.legend()
    fig.suptitle(f"Latency distribution at {level} connections (one line per round)")
    fig.tight_layout()
    fig.savefig(target, dpi=100)
    plt.close(fig)


def plot_distributions(series: dict[str, dict[str, Any]], title: str, target: Path) -> None:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    highest = 99.0
    for label, stats in series.items():
        if stats.get("percentiles"):
            xs, ys = _curve(stats["percentiles"])
            ax.plot(xs, ys, label=f"{label} (n={stats['count']})")
            highest = max([highest, *(float(p) for p in stats["percentiles"] if float(p) < 100)])
    _percentile_axis(ax, highest)
    ax.set_xlabel("percentile")
    ax.set_ylabel("latency, ms")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(target, dpi=100)
    plt.close(fig)


def render_plots(result: dict[str, Any], directory: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    if result.get("http", {}).get("runs"):
        written.append(directory / "throughput.png")
        plot_throughput(result, written[-1])
        level = latency_level(result)
        written.append(directory / f"latency-c{level}.png")
        plot_latency(result, level, written[-1])
    if result.get("checkout", {}).get("orders"):
        c = result["checkout"]
        written.append(directory / "checkout.png")
        plot_distributions(
            {"POST /cart/add": c["cart_add"], "POST /order/create": c["order_create"], "both": c["add_and_create"]},
            f"Checkout latency, {c['shoppers']} concurrent shoppers",
            written[-1],
        )
    if any(v["placed_to_readable"].get("count") for v in result.get("visibility", [])):
        written.append(directory / "placed-to-readable.png")
        plot_distributions(
            {f"{v['shoppers']} shopper(s)": v["placed_to_readable"] for v in result["visibility"]},
            "Order placed → delivery record readable",
            written[-1],
        )
    return written


# --- the document ---------------------------------------------------------------------------


def _f(value: float | None, digits: int = 0, suffix: str = "") -> str:
    return "–" if value is None else f"{value:,.{digits}f}{suffix}"


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value * 100:.0f}%"


def _mark(ok: bool) -> str:
    return "✅" if ok else "❌"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def render_markdown(
    result: dict[str, Any], source: str, plots: list[Path], doc_dir: Path, notes: dict[str, str]
) -> str:
    m = result["machine"]
    out: list[str] = [
        "# Benchmarks",
        "",
        f"<!-- Generated by `make bench` (bench/render.py) from {source}; do not edit by hand:"
        " explanations live in bench/notes.md. -->",
        "",
        f"`make bench` (`python -m bench`, options: `python -m bench --help`) starts Winkit as `make run` does"
        " (`winkit run` in a temporary data dir, on free ports, at the default log level: an access line"
        " per request; with the rate limits raised), then"
        " measures it. This page is rendered from the newest file in `bench/results/`"
        f" (`{source}`, started {result['started_utc']}, took {_f(result.get('wall_seconds'))} s"
        f"{', a --quick smoke run' if result.get('quick') else ''}).",
        "",
        "## Machine",
        "",
    ]
    versions = ", ".join(f"{k} {v}" for k, v in m.get("packages", {}).items() if v)
    out += _table(
        ["", ""],
        [
            ["CPU", f"{m['cpu_model']}, {m['cores']} cores ({m.get('usable_cores')} usable)"],
            ["memory", f"{_f(m.get('memory_mb'))} MB"],
            [
                "load average (1, 5, 15 min)",
                f"before {', '.join(f'{v:.2f}' for v in result['load_average_before'])}; "
                f"after {', '.join(f'{v:.2f}' for v in result.get('load_average_after', []))}",
            ],
            ["Python", m["python"]],
            ["wrk", m.get("wrk") or "not installed"],
            ["Envoy", m.get("envoy") or "not installed"],
            ["packages", versions],
        ],
    )
    out += [
        "",
        "The machine may be shared with other work while a benchmark runs (see the load average and the"
        " machine's busy cores in the generator table): absolute numbers are noisy; the comparisons are"
        " measured back to back in the same run, interleaved, so they share the machine's state.",
        "",
        "## Targets",
        "",
    ]
    verdicts = analysis.verdicts(result)
    out += _table(
        ["target", "goal", "measured", "verdict"],
        [
            [
                f"`{v.name}`",
                v.goal,
                v.measured,
                "not measured" if v.met is None else ("met" if v.met else f"**missed**: {v.shortfall}"),
            ]
            for v in verdicts
        ],
    )
    missed = [v for v in verdicts if v.met is False]
    if missed:
        out += ["", "### Why targets were missed", ""]
        for v in missed:
            out += [f"**`{v.name}`** ({v.goal}; measured {v.measured}): {v.shortfall}.", ""]
            out += [f"<!-- explain: {v.name} -->"]
            out += [
                notes.get(v.name)
                or f"*Not explained yet: add a `## {v.name}` section to bench/notes.md and re-render"
                " (`python -m bench --render-only`).*",
                "",
            ]

    errors = {**result.get("errors", {})}
    for part in ("http", "checkout"):
        if "error" in result.get(part, {}):
            errors[part] = result[part]["error"]
    if errors:
        out += ["", "## Parts that failed in this run", ""]
        out += [f"- {part}: `{message}`" for part, message in errors.items()]
    out += _startup_section(result)
    if result.get("http", {}).get("runs"):
        out += _reads_section(result, plots, doc_dir)
    if "orders" in result.get("checkout", {}):
        out += _checkout_section(result["checkout"], plots, doc_dir)
    if result.get("visibility"):
        out += _visibility_section(result["visibility"], plots, doc_dir)
    if notes.get("about"):
        out += ["## Notes", "", notes["about"], ""]
    return "\n".join(out).rstrip() + "\n"


def _image(plots: list[Path], name: str, doc_dir: Path, alt: str) -> list[str]:
    for plot in plots:
        if plot.name == name:
            return [f"![{alt}]({plot.relative_to(doc_dir).as_posix()})", ""]
    return []


def _startup_section(result: dict[str, Any]) -> list[str]:
    out = ["", "## Start-up and memory", ""]
    startup = result.get("startup", {})
    out += [
        f'`winkit run` printed "is up" (every part started and answering its health check) '
        f"**{_f(startup.get('seconds'), 1)} s** after it was spawned; the gateway's `/health` then answered "
        f"{startup.get('gateway_health_status', '–')}. Stopping it with Ctrl-C (SIGINT) at the end took "
        f"{_f(result.get('stop', {}).get('seconds'), 1)} s (exit code {result.get('stop', {}).get('exit_code')}).",
        "",
        "The supervisor starts each part once the one before it answers, so the gap between two parts'"
        " start times (from /proc) is roughly how long the first took to become ready."
        " Memory of every process in its tree, read from /proc five seconds after start-up (idle) and after all"
        " the load below. RSS counts shared pages in every process that maps them; PSS splits them, so its"
        " total is the better estimate of the whole stack's footprint.",
        "",
    ]
    idle = result.get("idle_memory", {}).get("processes", {})
    after = result.get("memory_after_load", {}).get("processes", {})
    spawned = startup.get("spawned_after_s", {})
    rows = []
    for name in sorted(idle, key=lambda n: (spawned.get(n, 1e9), n)):
        rows.append(
            [
                name,
                f"+{spawned[name]:.1f}" if name in spawned else "–",
                _f(idle[name].get("rss_kb", 0) / 1024, 1),
                _f(idle[name].get("pss_kb", 0) / 1024, 1) if "pss_kb" in idle[name] else "–",
                _f(after[name]["rss_kb"] / 1024, 1) if after.get(name, {}).get("rss_kb") else "–",
            ]
        )
    total_after = result.get("memory_after_load", {}).get("total_rss_kb")
    rows.append(
        [
            "**total**",
            f"up at +{_f(startup.get('seconds'), 1)}",
            f"**{_f(result.get('idle_memory', {}).get('total_rss_kb', 0) / 1024, 0)}**",
            f"**{_f(result.get('idle_memory', {}).get('total_pss_kb', 0) / 1024, 0)}**",
            f"**{_f(total_after / 1024, 0)}**" if total_after else "–",
        ]
    )
    out += _table(["process", "started at, s", "idle RSS, MB", "idle PSS, MB", "RSS after load, MB"], rows)
    return [*out, ""]


def _reads_section(result: dict[str, Any], plots: list[Path], doc_dir: Path) -> list[str]:
    http = result["http"]
    level = latency_level(result)
    out = [
        "## Catalog reads: bare ASGI app, catalog directly, through the gateway",
        "",
        f"wrk with `report.lua` (its `done()` hook reports JSON), {http['threads']} threads (one per connection"
        f" below that), {http['seconds']:g} s per run, {http['rounds']} round(s), after a {http['warmup_s']:g} s"
        " warm-up of every target. Only 2xx answers count. Per path and connection level the three targets run"
        " back to back, their order rotating between rounds; ratios are medians of the per-round ratios.",
        "",
        "- **bare**: a raw ASGI callable (bench/bare.py) under uvicorn with the services' options, replaying"
        " the exact bytes and headers the catalog answered: what uvicorn itself costs;",
        "- **direct**: the catalog service;",
        "- **gateway**: the same request through the gateway, `/api/catalog/...`.",
        "",
    ]
    rows = []
    for r in analysis.http_table(result):
        rows.append(
            [
                f"`{r['path']}`",
                str(r["connections"]),
                _f(r["bare"]["req_per_s"]),
                _f(r["direct"]["req_per_s"]),
                _f(r["gateway"]["req_per_s"]),
                f"{_pct(r['direct_vs_bare'])} {_mark((r['direct_vs_bare'] or 0) >= analysis.DIRECT_VS_BARE_MIN)}",
                f"{_pct(r['gateway_vs_direct'])} "
                f"{_mark((r['gateway_vs_direct'] or 0) >= analysis.GATEWAY_VS_DIRECT_MIN)}",
                " / ".join(_f(r[t]["p50_ms"], 2) for t in analysis.TARGETS),
                " / ".join(_f(r[t]["p99_ms"], 2) for t in analysis.TARGETS),
                _f(r["gateway_added_p50_ms"], 2),
            ]
        )
    out += _table(
        [
            "path",
            "conns",
            "bare req/s",
            "direct req/s",
            "gateway req/s",
            "direct/bare (≥60%)",
            "gateway/direct (≥70%)",
            "p50 ms bare/direct/gateway",
            "p99 ms bare/direct/gateway",
            "gateway adds, p50 ms",
        ],
        rows,
    )
    bad = [
        r
        for r in analysis.http_table(result)
        if any(r[t]["non_2xx"] or r[t]["socket_errors"] for t in analysis.TARGETS)
    ]
    out += [""]
    for r in bad:
        counts = ", ".join(
            f"{t}: {r[t]['non_2xx']} non-2xx, {r[t]['socket_errors']} socket errors" for t in analysis.TARGETS
        )
        out += [f"- `{r['path']}` -c{r['connections']}: {counts} (not counted in req/s)"]
    if bad:
        out += [""]
    sizes = {p["label"]: a for p, a in zip(http["paths"], http.get("first_answers", {}).values(), strict=False)}
    if sizes:
        described = "; ".join(
            f"`{label}` " + ", ".join(f"{t} {v['bytes']:,} B" for t, v in answer.items())
            for label, answer in sizes.items()
        )
        out += [f"Body sizes: {described}.", ""]
    out += _image(plots, "throughput.png", doc_dir, "Throughput per path and connection level")
    out += _image(plots, f"latency-c{level}.png", doc_dir, f"Latency distributions at -c{level}")

    out += [
        "### Load generator and server CPU",
        "",
        *_generator_verdict(result),
        "CPU time from /proc/<pid>/stat (utime + stime) over each run, in cores (CPU seconds per second),"
        " medians over paths and rounds. *servers* sums every process of the stack plus the bare app (idle"
        " ones too: at low request rates their background work weighs on the per-request figure);"
        " *machine busy* is the whole machine (/proc/stat), so what it shows beyond wrk and the servers is"
        " other work on the machine.",
        "",
    ]
    gen_rows = [
        [
            str(g["connections"]),
            g["target"],
            _f(g["wrk_cores"], 2),
            _f(g["wrk_cores_max"], 2),
            _f(g["wrk_us_per_request"], 1),
            _f(g["server_us_per_request"], 1),
            _f(g["server_cores"], 2),
            _pct(g["wrk_share"]),
            _f(g["machine_busy_cores"], 2),
        ]
        for g in analysis.generator_share(result)
    ]
    out += _table(
        [
            "conns",
            "target",
            "wrk cores",
            "wrk cores, max",
            "wrk µs CPU/request",
            "servers µs CPU/request",
            "servers, cores",
            "wrk's share of wrk + servers",
            "machine busy, cores",
        ],
        gen_rows,
    )
    top = max(http["levels"])
    out += [
        "",
        f"CPU per answered request at -c{top}, by process (ms; medians over rounds; processes that spent any):",
        "",
    ]
    cpu_rows = [
        [
            f"`{c['path']}`",
            c["target"],
            ", ".join(f"{name} {ms:.2f}" for name, ms in c["processes"].items() if ms >= 0.005) or "–",
            f"{c['wrk_ms']:.3f}",
        ]
        for c in analysis.cpu_per_request(result, top)
    ]
    out += _table(["path", "target", "servers, ms CPU per request", "wrk, ms CPU per request"], cpu_rows)
    out += [
        "",
        "CPU times come in clock ticks (10 ms): short runs at low rates round to 0.",
    ]
    return [*out, ""]


def _generator_verdict(result: dict[str, Any]) -> list[str]:
    """One sentence from the numbers: how busy wrk was, and its CPU per request against the servers'."""
    rows = [g for g in analysis.generator_share(result) if g["wrk_us_per_request"] and g["server_us_per_request"]]
    if not rows:
        return []
    busiest = max(rows, key=lambda g: g["wrk_thread_busy_max"])
    closest = max(rows, key=lambda g: g["wrk_us_per_request"] / g["server_us_per_request"])
    ratio = closest["wrk_us_per_request"] / closest["server_us_per_request"]
    sentence = (
        f"wrk kept its threads at most {busiest['wrk_thread_busy_max']:.0%} busy ({busiest['target']},"
        f" -c{busiest['connections']}) and spent at most {ratio:.0%} of the servers' CPU per request"
        f" ({closest['target']}, -c{closest['connections']}: {closest['wrk_us_per_request']:.1f} µs against"
        f" {closest['server_us_per_request']:.1f} µs)"
    )
    if busiest["wrk_thread_busy_max"] < 0.8 and ratio < 1:
        sentence += ": the servers, not the generator, used most of the CPU."
    else:
        sentence += ": the generator may have limited some runs."
    return [sentence, ""]


def _checkout_section(c: dict[str, Any], plots: list[Path], doc_dir: Path) -> list[str]:
    out = [
        "## Checkout",
        "",
        f"{c['shoppers']} concurrent shoppers, each registered through the dev one-time-code flow, each"
        " repeatedly `POST /cart/add` (one of eight bench products with plenty of stock, in turn) then"
        " `POST /order/create` with"
        f" an `Idempotency-Key` and a new delivery address, for {c['seconds']:g} s, straight to the services"
        " (Python asyncio + httpx generator).",
        "",
    ]
    failed = ", ".join(f"{n}× {status}" for status, n in c.get("failed_by_status", {}).items()) or "none"
    rows = [
        ["orders placed", f"{c['orders']:,} in {c['elapsed_s']:.1f} s", ""],
        ["orders/s", f"**{c['orders_per_s']:.1f}**", ""],
        ["failed attempts", failed, ""],
    ]
    for label, key in (
        ("POST /order/create", "order_create"),
        ("POST /cart/add", "cart_add"),
        ("both", "add_and_create"),
    ):
        s = c.get(key, {})
        rows.append(
            [
                f"{label} latency",
                f"p50 {_f(s.get('p50'), 1)} ms, p99 {_f(s.get('p99'), 1)} ms",
                f"max {_f(s.get('max'), 1)} ms",
            ]
        )
    rows.append(
        [
            "generator CPU",
            f"{c['generator_cpu_cores']:.2f} cores",
            f"{c['generator_cpu_s'] / max(c['orders'], 1) * 1000:.1f} ms per order",
        ]
    )
    server = c.get("server_cpu_s", {})
    busiest = sorted(server.items(), key=lambda kv: -kv[1])
    rows.append(
        [
            "server CPU per order",
            ", ".join(f"{name} {cpu / max(c['orders'], 1) * 1000:.1f} ms" for name, cpu in busiest if cpu > 0),
            f"total {sum(server.values()) / c['elapsed_s']:.2f} cores",
        ]
    )
    db = c.get("db_ops", {})
    if db.get("available"):
        per = ", ".join(f"{k} {v:.1f}" for k, v in db["per_order"].items() if abs(v) >= 0.05)
        rows.append(["database operations per order", f"**{db['total_per_order']:.1f}** ({per})", db["method"]])
    else:
        rows.append(["database operations per order", "not available", db.get("reason", "")])
    if "machine_busy_cores" in c:
        rows.append(["machine busy (all processes, /proc/stat)", f"{c['machine_busy_cores']:.2f} cores", ""])
    out += _table(["", "", ""], rows)
    out += [""]
    out += _image(plots, "checkout.png", doc_dir, "Checkout latency distribution")
    return out


def _visibility_section(found: list[dict[str, Any]], plots: list[Path], doc_dir: Path) -> list[str]:
    out = [
        "## Order placed → delivery record readable",
        "",
        "From the moment `POST /order/create` answered 201 until `GET /order/{id}/status` on the delivery"
        f" service answers 200, polled every {found[0]['poll_interval_ms']:g} ms per order; each shopper places"
        " its next order once the last one was readable.",
        "",
    ]
    rows = []
    for v in found:
        s = v["placed_to_readable"]
        rows.append(
            [
                str(v["shoppers"]),
                f"{s.get('count', 0):,}",
                _f(s.get("p50"), 1),
                _f(s.get("p90"), 1),
                _f(s.get("p99"), 1),
                _f(s.get("max"), 1),
                _f(v.get("polls_per_order", {}).get("mean"), 1),
                str(v["timeouts"]),
                _f(v.get("server_cores"), 2),
                _f(v.get("machine_busy_cores"), 2),
            ]
        )
    header = ["shoppers", "samples", "p50 ms", "p90 ms", "p99 ms", "max ms", "polls/order", "not readable in 10 s"]
    out += _table([*header, "servers, cores", "machine busy, cores"], rows)
    out += [""]
    out += _image(plots, "placed-to-readable.png", doc_dir, "Placed to readable latency distribution")
    return out


def render(result: dict[str, Any], doc: Path, source: str, notes: dict[str, str] | None = None) -> list[Path]:
    """Write ``doc`` and its plots (in a folder named after it, beside it); the plots."""
    plots = render_plots(result, doc.parent / doc.stem)
    doc.write_text(render_markdown(result, source, plots, doc.parent, read_notes() if notes is None else notes))
    return plots


def render_file(result_file: Path, doc: Path) -> list[Path]:
    result = json.loads(result_file.read_text())
    root = HERE.parent
    source = result_file.relative_to(root).as_posix() if result_file.is_relative_to(root) else result_file.name
    return render(result, doc, source)
