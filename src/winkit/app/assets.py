"""Serve the Flutter web build compressed (brotli or gzip) and make browsers revalidate it.

Flet serves its 14 MB web build uncompressed and without Cache-Control. `CompressedAssets` wraps the
whole app server: a build file is compressed once at a fast level on first request, cached on disk
and upgraded to the best level in the background; every other GET/HEAD response gets
`Cache-Control: no-cache` so repeat visits revalidate with ETags (304s) instead of re-downloading.
"""

from __future__ import annotations

import asyncio
import mimetypes
import os
import queue
import stat
import tempfile
import threading
import zlib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import NamedTuple

import brotli
import structlog
from flet_web.version import version as flet_web_version
from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = structlog.get_logger("winkit.app.assets")

mimetypes.add_type("application/wasm", ".wasm")
mimetypes.add_type("text/javascript", ".mjs")

# Flet patches these at runtime (base href, app name, fonts) and serves its own copies.
PATCHED = frozenset({"index.html", "manifest.json", "assets/FontManifest.json"})
COMPRESSIBLE = frozenset({".wasm", ".js", ".mjs", ".json", ".map", ".symbols", ".otf", ".ttf", ".css", ".svg", ".frag"})
# Flet's mounted app adds these to everything it serves; skwasm needs cross-origin isolation.
FLET_HEADERS: Mapping[str, str] = {
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Embedder-Policy": "require-corp",
    "Access-Control-Allow-Origin": "*",
}
SUFFIX = {"br": "br", "gzip": "gz"}
# Steps between stop checks, so close() can abandon a quality-11 run (~20 s for main.dart.wasm).
CHUNK = 1 << 20


class Job(NamedTuple):
    source: Path
    stem: Path  # cache path without the ".<level>.<suffix>" tail
    encoding: str


def negotiate(accept_encoding: str) -> str | None:
    """Pick br or gzip from an Accept-Encoding header (q-values honoured, br preferred on ties)."""
    weights: dict[str, float] = {}
    for item in accept_encoding.split(","):
        name, *params = (part.strip() for part in item.split(";"))
        weight = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    weight = float(value)
                except ValueError:
                    weight = 0.0
        if name:
            weights[name.lower()] = weight
    default = weights.get("*", 0.0)
    br, gzip = weights.get("br", default), weights.get("gzip", default)
    if br > 0 and br >= gzip:
        return "br"
    return "gzip" if gzip > 0 else None


class Abandoned(Exception):
    """close() was called during a background upgrade."""


def compress(data: bytes, encoding: str, best: bool, stop: threading.Event | None = None) -> bytes:
    """Compress `data`; raise Abandoned if `stop` gets set midway."""
    step: Callable[[bytes], bytes]
    end: Callable[[], bytes]
    if encoding == "br":
        br = brotli.Compressor(quality=11 if best else 5, lgwin=24 if best else 22)
        step, end = br.process, br.finish
    else:
        gz = zlib.compressobj(9 if best else 6, wbits=31)  # wbits=31: gzip framing
        step, end = gz.compress, gz.flush
    out = []
    for start in range(0, len(data), CHUNK):
        if stop and stop.is_set():
            raise Abandoned
        out.append(step(data[start : start + CHUNK]))
    out.append(end())
    return b"".join(out)


def store(path: Path, data: bytes) -> None:
    """Write atomically: a reader sees the old copy or the new one, never half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class CompressedAssets:
    """ASGI middleware serving files of `web_dir` brotli/gzip-compressed from a cache in `cache_dir`."""

    def __init__(
        self, app: ASGIApp, web_dir: str | Path, cache_dir: str | Path, headers: Mapping[str, str] = FLET_HEADERS
    ) -> None:
        self.app = app
        self.web_dir = Path(web_dir).resolve()
        # Keyed by flet-web version so an upgrade never serves the previous build's bytes.
        self.cache_dir = Path(cache_dir) / f"flet-web-{flet_web_version}"
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        self.headers = dict(headers)
        self._locks: dict[tuple[Path, str], asyncio.Lock] = {}
        self._jobs: queue.Queue[Job | None] = queue.Queue()
        self._pending: set[Job] = set()
        self._counts = {"compressed": 0, "upgraded": 0}
        self._mutex = threading.Lock()
        self._stop = threading.Event()
        threading.Thread(target=self._upgrade_worker, name="asset-upgrader", daemon=True).start()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in ("GET", "HEAD"):
            await self.app(scope, receive, send)
            return
        source = self._source(scope)
        encoding = negotiate(Headers(scope=scope).get("accept-encoding", "")) if source else None
        if source and encoding and await self._serve(scope, send, source, encoding):
            return

        async def send_revalidating(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers.setdefault("cache-control", "no-cache")
                if source:
                    headers.add_vary_header("Accept-Encoding")
            await send(message)

        await self.app(scope, receive, send_revalidating)

    def _source(self, scope: Scope) -> Path | None:
        """The compressible build file the request names, if any (never outside web_dir)."""
        path: str = scope["path"]
        root: str = scope.get("root_path", "")
        if root and path.startswith(root):
            path = path[len(root) :]
        rel = path.lstrip("/")
        parts = rel.split("/")
        if rel in PATCHED or "\\" in rel or "\0" in rel or any(part in ("", ".", "..") for part in parts):
            return None
        if Path(rel).suffix.lower() not in COMPRESSIBLE:
            return None
        full = self.web_dir.joinpath(*parts)
        try:
            # Equal only if no component below web_dir is a symlink.
            if full.resolve(strict=True) != full or not stat.S_ISREG(full.stat().st_mode):
                return None
        except OSError:
            return None
        return full

    async def _serve(self, scope: Scope, send: Send, source: Path, encoding: str) -> bool:
        """Answer with the compressed copy; False (nothing sent) if it cannot be made, e.g. the disk is full."""
        info = source.stat()  # noqa: ASYNC240 - one stat of a local file; a thread hop costs more
        # From the original file, so it stays the same when the cached copy is upgraded.
        etag = f'W/"{info.st_size:x}-{info.st_mtime_ns:x}-{encoding}"'
        content_type = mimetypes.guess_type(source.name)[0] or "application/octet-stream"
        if content_type.startswith("text/"):
            content_type += "; charset=utf-8"
        headers = {**self.headers, "etag": etag, "vary": "Accept-Encoding", "cache-control": "no-cache"}
        # Weak comparison (RFC 9110 13.1.2): the W/ prefix does not count.
        tags = {tag.strip().removeprefix("W/") for tag in Headers(scope=scope).get("if-none-match", "").split(",")}
        if etag.removeprefix("W/") in tags or "*" in tags:
            await self._send(send, 304, headers, b"")
            return True
        # The source's size and mtime in the name: a rebuilt web dir (FLET_WEB_PATH) is compressed afresh.
        stem = self.cache_dir / f"{source.relative_to(self.web_dir)}.{info.st_size:x}-{info.st_mtime_ns:x}"
        try:
            body = await self._compressed(Job(source, stem, encoding))
        except OSError as exc:
            log.warning("asset_compression_failed", path=str(source), error=repr(exc))
            return False
        headers |= {"content-type": content_type, "content-encoding": encoding, "content-length": str(len(body))}
        await self._send(send, 200, headers, b"" if scope["method"] == "HEAD" else body)
        return True

    @staticmethod
    async def _send(send: Send, status: int, headers: Mapping[str, str], body: bytes) -> None:
        raw = [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers.items()]
        await send({"type": "http.response.start", "status": status, "headers": raw})
        await send({"type": "http.response.body", "body": body})

    async def _compressed(self, job: Job) -> bytes:
        found = await asyncio.to_thread(self._read_cached, job)
        if found is None:
            async with self._locks.setdefault((job.stem, job.encoding), asyncio.Lock()):
                found = await asyncio.to_thread(self._read_cached, job)
                if found is None:
                    found = await asyncio.to_thread(self._compress_fast, job), "fast"
        body, level = found
        if level == "fast":
            self._schedule(job)
        return body

    @staticmethod
    def _cached_path(job: Job, level: str) -> Path:
        return job.stem.with_name(f"{job.stem.name}.{level}.{SUFFIX[job.encoding]}")

    def _read_cached(self, job: Job) -> tuple[bytes, str] | None:
        # Read rather than test-then-read: an upgrade may delete the fast copy in between.
        for level in ("best", "fast"):
            try:
                return self._cached_path(job, level).read_bytes(), level
            except FileNotFoundError:
                continue
        return None

    def _compress_fast(self, job: Job) -> bytes:
        body = compress(job.source.read_bytes(), job.encoding, best=False)
        store(self._cached_path(job, "fast"), body)
        with self._mutex:
            self._counts["compressed"] += 1
        return body

    def _schedule(self, job: Job) -> None:
        with self._mutex:
            if job in self._pending or self._stop.is_set():
                return
            self._pending.add(job)
        self._jobs.put(job)

    def _upgrade_worker(self) -> None:
        while (job := self._jobs.get()) is not None:
            try:
                body = compress(job.source.read_bytes(), job.encoding, best=True, stop=self._stop)
                store(self._cached_path(job, "best"), body)
                self._cached_path(job, "fast").unlink(missing_ok=True)
                with self._mutex:
                    self._counts["upgraded"] += 1
            except Abandoned:
                pass
            except Exception:  # the worker must survive, or wait_idle() would hang
                log.exception("asset_upgrade_failed", path=str(job.source))
            finally:
                with self._mutex:
                    self._pending.discard(job)
                self._jobs.task_done()
        self._jobs.task_done()

    def status(self) -> dict[str, int]:
        """Fast compressions and finished upgrades by this instance, and upgrades still queued or running."""
        with self._mutex:
            return {**self._counts, "upgrading": len(self._pending)}

    async def wait_idle(self) -> None:
        """Return once every scheduled upgrade has finished (or been abandoned by close())."""
        await asyncio.to_thread(self._jobs.join)

    def close(self) -> None:
        """Stop background upgrades (requests are still served); unfinished ones are redone by the next instance."""
        if not self._stop.is_set():
            self._stop.set()
            self._jobs.put(None)

    def __enter__(self) -> CompressedAssets:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
