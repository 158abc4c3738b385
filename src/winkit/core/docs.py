"""API documentation pages (Swagger UI) that work offline.

FastAPI's own /docs loads Swagger UI from a CDN and shows a blank page without internet;
here its assets come from the pinned ``fastapi-swagger`` wheel (Swagger UI 5, which reads
OpenAPI 3.1) and are served next to the page.
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from starlette.staticfiles import StaticFiles

ASSETS_PATH = "/docs/assets"


def install_docs(app: FastAPI, title: str) -> None:
    """``/docs`` for ``app``'s ``/openapi.json``. Every URL in the page is relative, so it
    also works behind a prefix (``/api/catalog/docs`` through the gateway)."""
    app.mount(ASSETS_PATH, StaticFiles(packages=[("fastapi_swagger", "resources")]), name="docs-assets")
    assets = ASSETS_PATH.removeprefix("/")

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url="openapi.json",
            title=title,
            swagger_js_url=f"{assets}/swagger-ui-bundle.js",
            swagger_css_url=f"{assets}/swagger-ui.css",
            swagger_favicon_url=f"{assets}/favicon-32x32.png",
        )
