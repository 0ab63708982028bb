"""The OpenAPI document lists every status an operation can answer, each as the error envelope.

The statuses come from what a route is made of, so a new route cannot ship undeclared:
the edge's checks (query text, body size and type), its parameters (422), path
parameters (404), and the errors its dependencies declare with `raises` (signed in →
401 and 429, `require(action)` → 403 and 404, the runtime → 503). A route adds its own
(409 busy, 410 expired…) with `@raises(...)` under its router decorator; a status the
route documents itself in `responses=` (an HTML 404 page) is kept as the route wrote it.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, params
from fastapi.routing import iter_route_contexts

from kap.core.errors import (
    BadRequest,
    KapError,
    NotFound,
    PayloadTooLarge,
    UnsupportedMediaType,
    ValidationFailed,
    declared_errors,
)
from kap.core.routes import dependants

BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
ERROR_REF = {"$ref": "#/components/schemas/Error"}
ERROR_SCHEMA: dict[str, Any] = {
    "type": "object", "required": ["ok", "error", "request_id"],
    "properties": {
        "ok": {"type": "boolean", "enum": [False]},
        "error": {"type": "object", "required": ["code", "message"],
                  "properties": {"code": {"type": "string"}, "message": {"type": "string"},
                                 "details": {"type": "object"}}},
        "request_id": {"type": ["string", "null"]},
    },
}
STATUS_TEXT = {400: "Malformed request", 401: "Not signed in, or bad credentials", 403: "Not allowed",
               404: "Not found (or not yours)", 405: "Method not allowed", 409: "Conflict with the current state",
               410: "Gone (an expired or used link)", 413: "Body too large", 415: "Unsupported content type",
               422: "Invalid input", 429: "Rate limited", 503: "Database or a service not ready"}


def _body_fields(dependant: Any) -> list[Any]:
    return [field for d in dependants(dependant) for field in d.body_params]


def _has_params(dependant: Any) -> bool:
    return any(d.path_params or d.query_params or d.header_params or d.cookie_params or d.body_params
               for d in dependants(dependant))


def edge_errors(methods: set[str], dependant: Any) -> set[type[KapError]]:
    """What the edge and request parsing can answer for a route of this shape."""
    errors: set[type[KapError]] = {ValidationFailed}  # every query string passes the text check
    if methods & BODY_METHODS:
        errors |= {BadRequest, PayloadTooLarge}  # a malformed or oversized Content-Length
    if _has_params(dependant):
        errors.add(ValidationFailed)
    if any(d.path_params for d in dependants(dependant)):
        errors.add(NotFound)
    if _body_fields(dependant):
        errors |= {BadRequest, UnsupportedMediaType, ValidationFailed, PayloadTooLarge}
    return errors


def route_errors(route: Any) -> set[type[KapError]]:
    """Every error a route can answer: the edge's, its dependencies' and its own."""
    errors = edge_errors(set(route.methods or ()), route.dependant)
    for dependant in dependants(route.dependant):
        if dependant.call is not None:
            errors |= set(declared_errors(dependant.call))
    return errors


def _takes_files(dependant: Any) -> bool:
    return any(isinstance(f.field_info, params.File) for f in _body_fields(dependant))


def error_statuses(route: Any) -> dict[int, set[str]]:
    """The error statuses of a route with the codes each can carry."""
    found: dict[int, set[str]] = {}
    for error in route_errors(route):
        found.setdefault(error.status, set()).add(error.code)
    if _takes_files(route.dependant):
        found.setdefault(401, set()).add("unauthorized")  # an upload authenticates before its body is read
    return found


def _describe(status: int, codes: set[str]) -> str:
    return f"{STATUS_TEXT.get(status, 'Error')} (code: {', '.join(sorted(codes))})"


def _operations(app: FastAPI) -> dict[tuple[str, str], Any]:
    table: dict[tuple[str, str], Any] = {}
    for route in iter_route_contexts(app.routes):
        if getattr(route, "dependant", None) is None or not getattr(route, "include_in_schema", False):
            continue
        for method in route.methods or ():
            table[(str(route.path_format), method.lower())] = route
    return table


def document_statuses(app: FastAPI) -> None:
    """Make `app.openapi()` list each operation's error statuses, all as the envelope."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = build()
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        components["Error"] = ERROR_SCHEMA
        routes = _operations(app)
        for path, item in schema.get("paths", {}).items():
            for method, operation in item.items():
                _declare(operation, routes[(path, method)])
        for unused in ("HTTPValidationError", "ValidationError"):
            components.pop(unused, None)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def _declare(operation: dict[str, Any], route: Any) -> None:
    responses = operation.setdefault("responses", {})
    own = {str(status) for status in route.responses}
    for status, codes in sorted(error_statuses(route).items()):
        if str(status) in own:
            continue
        responses[str(status)] = {"description": _describe(status, codes),
                                  "content": {"application/json": {"schema": ERROR_REF}}}


def html_page(*statuses: int, description: str = "An HTML page saying what went wrong") -> dict[int | str, Any]:
    """`responses=` for a page route whose errors are pages too, not the JSON envelope."""
    return {status: {"description": description, "content": {"text/html": {"schema": {"type": "string"}}}}
            for status in statuses}
