"""Catalog routes: thin, they validate and hand over to the domain."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response

from winkit.catalog import images
from winkit.catalog.http_cache import ResponseCache
from winkit.catalog.products import Catalog
from winkit.catalog.read_model import CatalogReadModel
from winkit.catalog.schemas import (
    Category,
    Product,
    ProductCreate,
    ProductQuery,
    ProductUpdate,
    Reservation,
    ReservationRequest,
)
from winkit.catalog.stock import Stock
from winkit.core.auth import CallingService, StaffPrincipal
from winkit.core.errors import NotFound
from winkit.core.service import from_state

router = APIRouter()

SVG = "image/svg+xml"
IMAGE_CACHE = "public, max-age=86400"


CatalogDep = Annotated[Catalog, Depends(from_state("catalog", Catalog))]
StockDep = Annotated[Stock, Depends(from_state("stock", Stock))]
ReadModelDep = Annotated[CatalogReadModel, Depends(from_state("read_model", CatalogReadModel))]
CacheDep = Annotated[ResponseCache, Depends(from_state("response_cache", ResponseCache))]

# Reads answer with bytes the read model serialised once (no response_model validation);
# response_model still documents them.
CONDITIONAL: dict[int | str, dict[str, Any]] = {
    200: {"headers": {"ETag": {"description": "Entity tag of this answer", "schema": {"type": "string"}}}},
    304: {"description": "Not modified: If-None-Match names the current entity tag"},
}


@router.get("/products", response_model=list[Product], tags=["products"], responses=CONDITIONAL)
async def list_products(
    request: Request, params: Annotated[ProductQuery, Query()], read_model: ReadModelDep, cache: CacheDep
) -> Response:
    """Every product matching the filters, by category then name."""
    ids = params.ids.split(",") if params.ids else None
    found = read_model.products(category=params.category, q=params.q, limit=params.limit, offset=params.offset, ids=ids)
    return cache.answer(request.scope, found)


@router.get("/products/{product_id}", response_model=Product, tags=["products"], responses=CONDITIONAL)
async def get_product(request: Request, product_id: str, read_model: ReadModelDep, cache: CacheDep) -> Response:
    product = read_model.product(product_id)
    if product is None:
        raise NotFound(f"No product with id {product_id!r}.")
    return cache.answer(request.scope, product)


@router.get(
    "/products/{product_id}/image.svg",
    tags=["products"],
    response_class=Response,
    responses={200: {"content": {SVG: {}}}},
)
async def product_image(product_id: str, catalog: CatalogDep) -> Response:
    product = await catalog.product(product_id)
    svg = images.product_tile_svg(product.name, product.category, product.unit)
    return Response(svg, media_type=SVG, headers={"Cache-Control": IMAGE_CACHE})


@router.post("/products", status_code=201, response_model=Product, tags=["staff"])
async def create_product(
    body: ProductCreate, _: StaffPrincipal, catalog: CatalogDep, read_model: ReadModelDep
) -> Product:
    return read_model.view(await catalog.create(body))


@router.patch("/products/{product_id}", response_model=Product, tags=["staff"])
async def update_product(
    product_id: str,
    body: ProductUpdate,
    _: StaffPrincipal,
    catalog: CatalogDep,
    read_model: ReadModelDep,
) -> Product:
    """Change any field, stock included; fields left out stay as they are."""
    return read_model.view(await catalog.update(product_id, body))


@router.delete("/products/{product_id}", status_code=204, tags=["staff"])
async def delete_product(product_id: str, _: StaffPrincipal, catalog: CatalogDep) -> Response:
    await catalog.delete(product_id)
    return Response(status_code=204)


@router.get("/categories", response_model=list[Category], tags=["categories"], responses=CONDITIONAL)
async def list_categories(request: Request, read_model: ReadModelDep, cache: CacheDep) -> Response:
    """Every category with its number of products, by name."""
    return cache.answer(request.scope, read_model.categories())


@router.get(
    "/categories/{name}/image.svg",
    tags=["categories"],
    response_class=Response,
    responses={200: {"content": {SVG: {}}}},
)
async def category_image(name: str, catalog: CatalogDep) -> Response:
    await catalog.require_category(name)
    return Response(images.category_tile_svg(name), media_type=SVG, headers={"Cache-Control": IMAGE_CACHE})


# Server to server only (a service token is required); the gateway does not expose it.
internal_router = APIRouter(prefix="/internal", tags=["internal"])


@internal_router.post("/reservations", status_code=201, response_model=Reservation)
async def reserve_stock(body: ReservationRequest, _: CallingService, stock: StockDep) -> Reservation:
    """Take every line's stock for one order, all or nothing; 409 names the short lines."""
    return Reservation.of(await stock.reserve(body.order_id, body.items))


@internal_router.post("/reservations/{order_id}/release", response_model=Reservation)
async def release_stock(order_id: str, _: CallingService, stock: StockDep) -> Reservation:
    """Give an order's stock back (safe to repeat)."""
    return Reservation.of(await stock.release(order_id))
