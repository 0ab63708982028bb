"""HTTP plumbing shared by every route: request ids, body limits, the JSON error envelope."""

from __future__ import annotations

import contextvars
import json
import logging
import re
import uuid
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from kap.core.audit import record_telemetry
from kap.core.errors import DbNotReady, KapError, envelope

log = logging.getLogger("kap.http")
request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")
_REQUEST_ID_OK = re.compile(r"^[A-Za-z0-9._-]{8,64}$")
BODY_TYPES_API = ("application/json", "multipart/form-data", "application/x-www-form-urlencoded")


class RequestIdFilter(logging.Filter):
    """Adds the current request id to every log record."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get()
        return True


def _json_response(status: int, body: dict[str, Any], request_id: str,
                   headers: dict[str, str] | None = None) -> JSONResponse:
    response = JSONResponse(body, status_code=status, headers=headers)
    response.headers["X-Request-ID"] = request_id
    return response


class EdgeMiddleware:
    """Request id on every response, body size limits and content-type checks before routing."""

    def __init__(self, app: ASGIApp, *, max_json: int, max_upload: int) -> None:
        self.app = app
        self.max_json = max_json
        self.max_upload = max_upload

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        incoming = headers.get("x-request-id", "")
        request_id = incoming if _REQUEST_ID_OK.match(incoming) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        token = request_id_var.set(request_id)
        try:
            early = self._check(scope, headers, request_id)
            if early is not None:
                await early(scope, receive, send)
                return
            limit = self._limit(headers)

            async def send_with_id(message: Message) -> None:
                if message["type"] == "http.response.start":
                    raw = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"x-request-id"]
                    raw.append((b"x-request-id", request_id.encode()))
                    message["headers"] = raw
                await send(message)

            await self.app(scope, _counting_receive(receive, limit), send_with_id)
        finally:
            request_id_var.reset(token)

    def _limit(self, headers: dict[str, str]) -> int:
        is_upload = headers.get("content-type", "").startswith("multipart/form-data")
        return self.max_upload if is_upload else self.max_json

    def _check(self, scope: Scope, headers: dict[str, str], request_id: str) -> JSONResponse | None:
        method = scope["method"]
        if method not in ("POST", "PUT", "PATCH"):
            return None
        limit = self._limit(headers)
        length = headers.get("content-length")
        if length is not None:
            if not length.isdigit():
                return _json_response(400, envelope("bad_request", "invalid Content-Length", request_id),
                                      request_id)
            if int(length) > limit:
                return _json_response(413, envelope("payload_too_large",
                                                    f"body larger than {limit} bytes", request_id),
                                      request_id)
        has_body = (length not in (None, "0")) or "transfer-encoding" in headers
        ctype = headers.get("content-type", "").split(";")[0].strip().lower()
        if has_body and scope["path"].startswith("/api/") and ctype not in BODY_TYPES_API:
            return _json_response(415, envelope("unsupported_media_type",
                                                f"content type {ctype or '(none)'} is not accepted",
                                                request_id), request_id)
        return None


def _counting_receive(receive: Receive, limit: int) -> Receive:
    seen = 0

    async def wrapped() -> Message:
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > limit:
                # FastAPI re-raises HTTPException from body parsing; anything else becomes a 400.
                raise HTTPException(status_code=413, detail=f"body larger than {limit} bytes")
        return message

    return wrapped


def _request_id(request: Request) -> str:
    return str(getattr(request.state, "request_id", None) or request_id_var.get())


def _telemetry(request: Request, kind: str, status: int, details: dict[str, Any] | None = None) -> None:
    runtime = getattr(request.app.state, "runtime", None)
    if runtime is None:
        return
    identity = getattr(request.state, "identity", None)
    record_telemetry(runtime.db, kind=kind, status=status, method=request.method,
                     path=request.url.path, request_id=_request_id(request),
                     user_id=getattr(identity, "user_id", None),
                     org_id=getattr(request.state, "org_id", None),
                     project_id=getattr(request.state, "project_id", None),
                     client_ip=request.client.host if request.client else None, details=details)


async def kap_error_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, KapError)
    if exc.status == 429:
        _telemetry(request, "rate_limited", 429, exc.details)
    elif exc.status >= 500:
        _telemetry(request, exc.code, exc.status, {"message": exc.message})
    return _json_response(exc.status, envelope(exc.code, exc.message, _request_id(request), exc.details),
                          _request_id(request), exc.headers)


async def validation_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    if any(e.get("type") == "json_invalid" for e in errors):
        return _json_response(400, envelope("invalid_json", "the body is not valid JSON",
                                            _request_id(request)), _request_id(request))
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != "application/json" and any(tuple(e.get("loc", ())) == ("body",) for e in errors):
        return _json_response(415, envelope("unsupported_media_type", "send the body as application/json",
                                            _request_id(request)), _request_id(request))
    fields = [{"field": ".".join(str(p) for p in e.get("loc", ())[1:]) or str(e.get("loc", ("request",))[0]),
               "in": str(e.get("loc", ("body",))[0]), "message": e.get("msg", "invalid")} for e in errors]
    names = ", ".join(f["field"] for f in fields if f["field"]) or "request"
    return _json_response(422, envelope("validation_error", f"invalid value for {names}",
                                        _request_id(request), {"fields": fields}), _request_id(request))


async def http_error_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    codes = {404: "not_found", 405: "method_not_allowed", 400: "bad_request", 401: "unauthorized",
             413: "payload_too_large"}
    code = codes.get(exc.status_code, "http_error")
    message = str(exc.detail) if exc.status_code not in (404, 405) else code.replace("_", " ")
    return _json_response(exc.status_code, envelope(code, message, _request_id(request)),
                          _request_id(request), dict(exc.headers or {}))


async def db_error_handler(request: Request, exc: Exception) -> JSONResponse:
    if isinstance(exc, DBAPIError) and not isinstance(exc, OperationalError) \
            and not exc.connection_invalidated:
        return await internal_error_handler(request, exc)
    runtime = getattr(request.app.state, "runtime", None)
    if runtime is not None:
        runtime.db.schema_ready = False
    log.warning("database not ready: %s", exc.__class__.__name__)
    return await kap_error_handler(request, DbNotReady())


async def internal_error_handler(request: Request, exc: Exception) -> JSONResponse:
    request_id = _request_id(request)
    log.error("unhandled error on %s %s [%s]", request.method, request.url.path, request_id,
              exc_info=(type(exc), exc, exc.__traceback__))
    _telemetry(request, "internal_error", 500, {"error": type(exc).__name__})
    return _json_response(500, envelope("internal", "unexpected error; quote the request id",
                                        request_id), request_id)


def install_error_handlers(app: FastAPI) -> None:
    """Route every failure to the JSON envelope."""
    app.add_exception_handler(KapError, kap_error_handler)
    app.add_exception_handler(RequestValidationError, validation_handler)
    app.add_exception_handler(StarletteHTTPException, http_error_handler)
    app.add_exception_handler(OperationalError, db_error_handler)
    app.add_exception_handler(PoolTimeout, db_error_handler)
    app.add_exception_handler(DBAPIError, db_error_handler)
    app.add_exception_handler(Exception, internal_error_handler)


def dumps(data: Any) -> str:
    return json.dumps(data, default=str)
