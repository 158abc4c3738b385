"""CompressedAssets: the Flutter web build goes out brotli/gzip-compressed and is revalidated, not re-downloaded."""

from __future__ import annotations

import asyncio
import gzip
import os
import random
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import brotli
import httpx
import pytest
from flet_web import get_package_web_dir
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import Message, Receive, Scope, Send

from winkit.app.assets import CompressedAssets

RNG = random.Random(7)
WASM = bytes(RNG.choice(b"abcdefgh\x00\x01") for _ in range(300_000))
JS = b"function f(x) { return x + 1; }\n" * 2_000


@pytest.fixture
def web_dir(tmp_path: Path) -> Path:
    web = tmp_path / "web"
    (web / "assets").mkdir(parents=True)
    (web / "main.dart.wasm").write_bytes(WASM)
    (web / "flutter.js").write_bytes(JS)
    (web / "index.html").write_text("<html>index</html>")
    (web / "assets" / "FontManifest.json").write_text("[]" * 1000)
    (web / "favicon.png").write_bytes(b"\x89PNG" + b"\x00" * 5000)
    (tmp_path / "secret.js").write_text("SECRET " * 1000)
    (web / "link.js").symlink_to(tmp_path / "secret.js")
    return web


def inner_app(web_dir: Path) -> Starlette:
    async def order(request: Request) -> Response:
        return PlainTextResponse(f"order {request.path_params['oid']}")

    async def cached(request: Request) -> Response:
        return PlainTextResponse("cached", headers={"Cache-Control": "max-age=60"})

    return Starlette(
        routes=[
            Route("/orders/{oid}", order),
            Route("/cached", cached),
            Mount("/", StaticFiles(directory=web_dir, html=True)),
        ]
    )


@pytest.fixture
def assets(web_dir: Path, tmp_path: Path) -> Iterator[CompressedAssets]:
    with CompressedAssets(inner_app(web_dir), web_dir, tmp_path / "cache") as middleware:
        yield middleware


@pytest.fixture
async def client(assets: CompressedAssets) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(assets), base_url="http://app") as http:
        del http.headers["accept-encoding"]  # each test states what its "browser" accepts
        yield http


async def get_raw(http: httpx.AsyncClient, path: str, **headers: str) -> tuple[httpx.Response, bytes]:
    """The response and its body as sent, before httpx decodes brotli or gzip."""
    async with http.stream("GET", path, headers=headers) as response:
        return response, b"".join([chunk async for chunk in response.aiter_raw()])


async def test_brotli_copy_is_smaller_and_decodes_to_the_file(client: httpx.AsyncClient) -> None:
    response, raw = await get_raw(client, "/main.dart.wasm", **{"accept-encoding": "gzip, deflate, br, zstd"})
    assert response.status_code == 200
    assert response.headers["content-encoding"] == "br"
    assert response.headers["content-type"] == "application/wasm"
    assert response.headers["content-length"] == str(len(raw))
    assert response.headers["vary"] == "Accept-Encoding"
    assert response.headers["cache-control"] == "no-cache"
    assert response.headers["etag"].startswith('W/"')
    assert response.headers["cross-origin-embedder-policy"] == "require-corp"
    assert len(raw) < len(WASM) / 2
    assert brotli.decompress(raw) == WASM


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        ("gzip, deflate", "gzip"),
        ("br;q=0.5, gzip", "gzip"),
        ("br;q=0, *", "gzip"),
        ("*", "br"),
        ("BR", "br"),
        (None, None),
        ("identity", None),
        ("deflate", None),
        ("br;q=0, gzip;q=0", None),
        ("br; q=0.0, gzip ;q=0", None),
    ],
)
async def test_encoding_follows_accept_encoding(
    client: httpx.AsyncClient, accept: str | None, expected: str | None
) -> None:
    response, raw = await get_raw(client, "/flutter.js", **({"accept-encoding": accept} if accept is not None else {}))
    assert response.status_code == 200
    assert response.headers.get("content-encoding") == expected
    assert response.headers["cache-control"] == "no-cache"
    assert "accept-encoding" in response.headers["vary"].lower()
    decoded = {"br": brotli.decompress, "gzip": gzip.decompress, None: bytes}[expected](raw)
    assert decoded == JS


async def test_if_none_match_gets_304(client: httpx.AsyncClient) -> None:
    first = await client.get("/main.dart.wasm", headers={"accept-encoding": "br"})
    etag = first.headers["etag"]
    again = await client.get("/main.dart.wasm", headers={"accept-encoding": "br", "if-none-match": etag})
    assert again.status_code == 304
    assert again.content == b""
    assert again.headers["etag"] == etag
    assert again.headers["cache-control"] == "no-cache"
    # The gzip representation has its own ETag, so a br validator does not match it.
    other = await client.get("/main.dart.wasm", headers={"accept-encoding": "gzip", "if-none-match": etag})
    assert other.status_code == 200
    assert other.headers["content-encoding"] == "gzip"


async def test_head_has_headers_and_no_body(client: httpx.AsyncClient) -> None:
    _, raw = await get_raw(client, "/main.dart.wasm", **{"accept-encoding": "br"})
    head = await client.head("/main.dart.wasm", headers={"accept-encoding": "br"})
    assert head.status_code == 200
    assert head.headers["content-encoding"] == "br"
    assert head.headers["content-length"] == str(len(raw))
    assert head.num_bytes_downloaded == 0


async def test_upgrade_happens_in_background_and_keeps_the_etag(
    client: httpx.AsyncClient, assets: CompressedAssets
) -> None:
    first, fast = await get_raw(client, "/main.dart.wasm", **{"accept-encoding": "br"})
    assert assets.status()["compressed"] == 1
    await assets.wait_idle()
    assert assets.status() == {"compressed": 1, "upgraded": 1, "upgrading": 0}
    second, best = await get_raw(client, "/main.dart.wasm", **{"accept-encoding": "br"})
    assert second.headers["etag"] == first.headers["etag"]
    assert len(best) <= len(fast)
    assert brotli.decompress(best) == WASM
    assert assets.status()["compressed"] == 1


async def test_concurrent_first_requests_compress_once(client: httpx.AsyncClient, assets: CompressedAssets) -> None:
    responses = await asyncio.gather(
        *(client.get("/main.dart.wasm", headers={"accept-encoding": "br"}) for _ in range(5))
    )
    assert all(response.content == WASM for response in responses)  # httpx decoded the brotli
    assert assets.status()["compressed"] == 1
    await assets.wait_idle()
    assert assets.status()["upgraded"] == 1


async def test_a_new_instance_reuses_the_cache(web_dir: Path, tmp_path: Path) -> None:
    async def fetch(middleware: CompressedAssets) -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(middleware), base_url="http://app") as http:
            return await http.get("/main.dart.wasm", headers={"accept-encoding": "br"})

    with CompressedAssets(inner_app(web_dir), web_dir, tmp_path / "cache") as first:
        etag = (await fetch(first)).headers["etag"]
        await first.wait_idle()
    with CompressedAssets(inner_app(web_dir), web_dir, tmp_path / "cache") as second:
        response = await fetch(second)
        assert response.headers["etag"] == etag
        assert response.content == WASM
        assert second.status() == {"compressed": 0, "upgraded": 0, "upgrading": 0}


async def test_an_unfinished_upgrade_is_finished_by_the_next_instance(web_dir: Path, tmp_path: Path) -> None:
    first = CompressedAssets(inner_app(web_dir), web_dir, tmp_path / "cache")
    first.close()  # as if stopped before its upgrade ran: it still serves, but upgrades nothing
    async with httpx.AsyncClient(transport=httpx.ASGITransport(first), base_url="http://app") as http:
        fast = await http.get("/main.dart.wasm", headers={"accept-encoding": "br"})
    assert fast.headers["content-encoding"] == "br"
    assert first.status() == {"compressed": 1, "upgraded": 0, "upgrading": 0}
    with CompressedAssets(inner_app(web_dir), web_dir, tmp_path / "cache") as second:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(second), base_url="http://app") as http:
            response = await http.get("/main.dart.wasm", headers={"accept-encoding": "br"})
        assert response.content == WASM
        assert response.headers["etag"] == fast.headers["etag"]
        await second.wait_idle()
        assert second.status() == {"compressed": 0, "upgraded": 1, "upgrading": 0}


async def test_a_changed_file_is_compressed_again(client: httpx.AsyncClient, web_dir: Path) -> None:
    first = await client.get("/flutter.js", headers={"accept-encoding": "br"})
    changed = JS + b"// v2\n"
    (web_dir / "flutter.js").write_bytes(changed)
    os.utime(web_dir / "flutter.js", ns=(0, 10**18))
    second = await client.get("/flutter.js", headers={"accept-encoding": "br"})
    assert second.headers["etag"] != first.headers["etag"]
    assert second.content == changed


async def call(app: CompressedAssets, path: str, method: str = "GET") -> tuple[int, dict[str, str], bytes]:
    """Drive the ASGI app with a raw path: httpx would normalise `..` away before sending."""
    scope: Scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"app"), (b"accept-encoding", b"br, gzip")],
        "server": ("app", 80),
        "client": ("127.0.0.1", 1234),
    }
    messages: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        messages.append(message)

    await app(scope, receive, send)
    start = messages[0]
    headers = {name.decode(): value.decode() for name, value in start["headers"]}
    return start["status"], headers, b"".join(m.get("body", b"") for m in messages[1:])


@pytest.mark.parametrize(
    "path", ["/../secret.js", "/assets/../../secret.js", "/./../secret.js", "//secret.js", "/link.js"]
)
async def test_paths_never_escape_web_dir(assets: CompressedAssets, tmp_path: Path, path: str) -> None:
    _, headers, body = await call(assets, path)
    assert "content-encoding" not in headers
    assert b"SECRET" not in body
    assert not list((tmp_path / "cache").rglob("*secret*"))
    assert not list((tmp_path / "cache").rglob("*link*"))


async def test_percent_encoded_dots_never_escape_web_dir(client: httpx.AsyncClient) -> None:
    response = await client.get("/%2e%2e/secret.js", headers={"accept-encoding": "br"})
    assert "content-encoding" not in response.headers
    assert b"SECRET" not in response.content


@pytest.mark.parametrize("path", ["/", "/index.html", "/assets/FontManifest.json", "/favicon.png", "/orders/123"])
async def test_pages_routes_and_patched_files_pass_through_with_no_cache(client: httpx.AsyncClient, path: str) -> None:
    response = await client.get(path, headers={"accept-encoding": "br, gzip"})
    assert response.status_code == 200
    assert "content-encoding" not in response.headers
    assert response.headers["cache-control"] == "no-cache"


async def test_pass_through_keeps_an_existing_cache_control_and_other_methods(client: httpx.AsyncClient) -> None:
    assert (await client.get("/cached")).headers["cache-control"] == "max-age=60"
    post = await client.post("/orders/1")
    assert post.status_code == 405
    assert "cache-control" not in post.headers


async def test_websocket_and_lifespan_scopes_pass_through(web_dir: Path, tmp_path: Path) -> None:
    seen: list[Scope] = []

    async def inner(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope)

    with CompressedAssets(inner, web_dir, tmp_path / "cache") as middleware:
        for scope in ({"type": "lifespan"}, {"type": "websocket", "path": "/main.dart.wasm", "headers": []}):
            await middleware(scope, None, None)  # type: ignore[arg-type]
    assert [scope["type"] for scope in seen] == ["lifespan", "websocket"]


async def test_real_flet_build_wasm_goes_out_brotli(tmp_path: Path) -> None:
    async def not_found(scope: Scope, receive: Receive, send: Send) -> None:
        await PlainTextResponse("not found", status_code=404)(scope, receive, send)

    with CompressedAssets(not_found, get_package_web_dir(), tmp_path / "cache") as middleware:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(middleware), base_url="http://app") as http:
            response, raw = await get_raw(http, "/main.dart.wasm", **{"accept-encoding": "gzip, deflate, br, zstd"})
    assert response.headers["content-type"] == "application/wasm"
    assert response.headers["content-encoding"] == "br"
    assert response.headers["cross-origin-opener-policy"] == "same-origin"
    assert len(raw) < 3_500_000
