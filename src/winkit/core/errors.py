"""RFC 9457 problem details: every error a Winkit service returns has this one shape."""

from __future__ import annotations

from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pymongo.errors import ConnectionFailure
from starlette.exceptions import HTTPException as StarletteHTTPException

PROBLEM_JSON = "application/problem+json"
PROBLEM_TYPE_BASE = "https://winkit.dev/problems/"


class Problem(Exception):
    """A failure the client caused or must know about; rendered as problem+json."""

    status: int = 500
    slug: str | None = None

    def __init__(
        self,
        detail: str,
        *,
        headers: dict[str, str] | None = None,
        **extensions: Any,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.headers = headers
        self.extensions = extensions

    @property
    def type(self) -> str:
        return PROBLEM_TYPE_BASE + self.slug if self.slug else "about:blank"

    @property
    def title(self) -> str:
        return HTTPStatus(self.status).phrase


class BadRequest(Problem):
    status, slug = 400, "bad-request"


class Unauthorized(Problem):
    status, slug = 401, "unauthorized"

    def __init__(self, detail: str = "A valid bearer token is required.", **kw: Any) -> None:
        kw.setdefault("headers", {"WWW-Authenticate": "Bearer"})
        super().__init__(detail, **kw)


class Forbidden(Problem):
    status, slug = 403, "forbidden"


class NotFound(Problem):
    status, slug = 404, "not-found"


class Conflict(Problem):
    status, slug = 409, "conflict"


class OutOfStock(Conflict):
    """Not enough stock for some lines (``short_items``: each with what is ``available``)."""

    slug = "out-of-stock"


class PricesChanged(Conflict):
    """Prices changed since the shopper saw them (``changed_items``: shown and current price)."""

    slug = "prices-changed"


class Unprocessable(Problem):
    """Well-formed input that cannot be acted on (a reference to nothing, say)."""

    status, slug = 422, "validation"


class PayloadTooLarge(Problem):
    status, slug = 413, "payload-too-large"


class TooManyRequests(Problem):
    status, slug = 429, "too-many-requests"

    def __init__(self, detail: str, *, retry_after: int, **kw: Any) -> None:
        super().__init__(detail, headers={"Retry-After": str(max(1, retry_after))}, **kw)


class BadGateway(Problem):
    status, slug = 502, "bad-gateway"


class ServiceUnavailable(Problem):
    status, slug = 503, "service-unavailable"


class GatewayTimeout(Problem):
    status, slug = 504, "gateway-timeout"


def problem_response(
    status: int,
    detail: str | None = None,
    *,
    type_: str = "about:blank",
    title: str | None = None,
    headers: Mapping[str, str] | None = None,
    **extensions: Any,
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": type_,
        "title": title or HTTPStatus(status).phrase,
        "status": status,
    }
    if detail:
        body["detail"] = detail
    body.update(extensions)
    # Extensions may hold money (Decimal) and times: encoded as every answer encodes them.
    return JSONResponse(jsonable_encoder(body), status_code=status, headers=headers, media_type=PROBLEM_JSON)


# Pydantic's wording where it speaks of its own machinery (dictionaries, patterns, parsing)
# rather than of what to type. Fields with a format of their own say it themselves.
_PLAIN_MESSAGES = {
    "missing": "This is required.",
    "extra_forbidden": "This is not accepted here.",
    "dict_type": "Send a JSON object here.",
    "model_type": "Send a JSON object here.",
    "model_attributes_type": "Send a JSON object here.",
    "json_invalid": "This is not valid JSON.",
    "list_type": "Send a list here.",
    "string_type": "Send text here.",
    "string_pattern_mismatch": "This is not in the expected format.",
    "int_type": "Enter a whole number.",
    "int_parsing": "Enter a whole number.",
    "int_from_float": "Enter a whole number.",
    "float_type": "Enter a number.",
    "float_parsing": "Enter a number.",
    "decimal_parsing": "Enter a number.",
    "decimal_type": "Enter a number.",
    "bool_type": "Enter true or false.",
    "bool_parsing": "Enter true or false.",
}


def _message(error: Any) -> str:
    message = _PLAIN_MESSAGES.get(error.get("type", ""), str(error.get("msg", "")))
    return message.removeprefix("Value error, ")


def _field_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    # The client's input is not echoed back: it may hold a password.
    return [
        {"loc": list(err.get("loc", ())), "msg": _message(err), "type": err.get("type", "")} for err in exc.errors()
    ]


async def _on_problem(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, Problem)
    instance = {"instance": request.url.path}
    return problem_response(
        exc.status,
        exc.detail,
        type_=exc.type,
        title=exc.title,
        headers=exc.headers,
        **instance,
        **exc.extensions,
    )


async def _on_http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    detail = exc.detail if isinstance(exc.detail, str) else None
    if exc.status_code == 404 and detail == "Not Found":
        detail = f"No route matches {request.method} {request.url.path}."
    return problem_response(exc.status_code, detail, headers=exc.headers)


async def _on_validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return problem_response(
        422,
        "The request is not valid; see errors.",
        type_=PROBLEM_TYPE_BASE + "validation",
        errors=_field_errors(exc),
    )


async def _on_database_down(request: Request, exc: Exception) -> JSONResponse:
    # Nothing was written, and the driver's message names hosts: say only what to do.
    return problem_response(
        503,
        "The database is unavailable; try again shortly.",
        type_=PROBLEM_TYPE_BASE + "service-unavailable",
        headers={"Retry-After": "5"},
    )


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ConnectionFailure, _on_database_down)
    app.add_exception_handler(Problem, _on_problem)
    app.add_exception_handler(StarletteHTTPException, _on_http_error)
    app.add_exception_handler(RequestValidationError, _on_validation_error)
