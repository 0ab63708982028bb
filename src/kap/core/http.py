"""HTTP plumbing shared by every route: request ids, body limits, the JSON error envelope."""

from __future__ import annotations

import contextvars
import json
import logging
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from fastapi import FastAPI, HTTPException, Request, params
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.routing import iter_route_contexts
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from kap.core.audit import record_telemetry
from kap.core.errors import DbNotReady, KapError, envelope
from kap.core.inputs import check_form_items, check_json, check_pairs, summary
from kap.core.routes import dependants

log = logging.getLogger("kap.http")
request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")
_REQUEST_ID_OK = re.compile(r"^[A-Za-z0-9._-]{8,64}$")
BODY_TYPES_API = ("application/json", "multipart/form-data", "application/x-www-form-urlencoded")
BODY_METHODS = ("POST", "PUT", "PATCH", "DELETE")


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


class EdgeRefusal(HTTPException):
    """A refusal raised while the edge reads a body; rendered to the envelope like any error."""

    def __init__(self, status: int, code: str, message: str, details: dict[str, Any] | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(status_code=status, detail=message, headers=headers)
        self.code = code
        self.details = details or {}


@dataclass(frozen=True)
class BodyPolicy:
    """How much body a route takes and whether the caller must be known before it is read."""

    limit: int
    streamed: bool  # multipart uploads go to disk as they arrive; everything else is read into memory


_UPLOAD_ROUTES: dict[int, bool] = {}


def _takes_files(route: Any) -> bool:
    """Whether a route declares a File parameter: its choice of the upload body policy."""
    key = id(route)
    if key not in _UPLOAD_ROUTES:
        dependant = getattr(route, "dependant", None)
        _UPLOAD_ROUTES[key] = dependant is not None and any(
            isinstance(f.field_info, params.File) for f in _body_fields(dependant))
    return _UPLOAD_ROUTES[key]


def _body_fields(dependant: Any) -> Iterator[Any]:
    yield from dependant.body_params
    for sub in dependant.dependencies:
        yield from _body_fields(sub)


class EdgeMiddleware:
    """Request id on every response; text, size and content-type checks before any handler runs.

    The body policy is chosen by the route the request reached: routes that declare a
    File parameter take uploads up to KAP_MAX_UPLOAD_MB, streamed to disk and only after
    the caller has authenticated; every other route takes KAP_MAX_JSON_KB, read into
    memory and checked by the one text validator before the handler sees it.
    """

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
            if early is None and scope["method"] == "OPTIONS":
                early = _options(scope, request_id)
            if early is not None:
                await early(scope, receive, send)
                return

            async def send_with_id(message: Message) -> None:
                if message["type"] == "http.response.start":
                    raw = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"x-request-id"]
                    raw.append((b"x-request-id", request_id.encode()))
                    if not any(k.lower() == b"x-content-type-options" for k, _ in raw):
                        raw.append((b"x-content-type-options", b"nosniff"))  # no response is content-sniffed
                    message["headers"] = raw
                await send(message)

            body_receive = receive
            if scope["method"] in BODY_METHODS:
                body_receive = _BodyReader(self, scope, headers, receive)
            await self.app(scope, body_receive, send_with_id)
        finally:
            request_id_var.reset(token)

    def policy(self, scope: Scope) -> BodyPolicy:
        """The body policy of the route this request was routed to."""
        if _takes_files(scope.get("route")):
            return BodyPolicy(self.max_upload, streamed=True)
        return BodyPolicy(self.max_json, streamed=False)

    def _check(self, scope: Scope, headers: dict[str, str], request_id: str) -> JSONResponse | None:
        problems = check_pairs(scope["query_string"], "query")
        if problems:
            return _json_response(422, envelope("validation_error", summary(problems), request_id,
                                                {"fields": problems}), request_id)
        if scope["method"] not in BODY_METHODS:
            return None
        length = headers.get("content-length")
        if length is not None:
            if not length.isdigit():
                return _json_response(400, envelope("bad_request", "invalid Content-Length", request_id),
                                      request_id)
            largest = max(self.max_upload, self.max_json)
            if int(length) > largest:
                return _json_response(413, envelope("payload_too_large",
                                                    f"body larger than {largest} bytes", request_id),
                                      request_id)
        return None


class _BodyReader:
    """The `receive` a routed request reads its body through, under its route's policy.

    Nothing is read until the route asks for the body, so the route is known by then.
    """

    def __init__(self, edge: EdgeMiddleware, scope: Scope, headers: dict[str, str], receive: Receive) -> None:
        self.edge, self.scope, self.headers, self.receive = edge, scope, headers, receive
        self.started = False
        self.pending: list[Message] = []
        self.seen = 0
        self.limit = 0

    async def __call__(self) -> Message:
        if not self.started:
            self.started = True
            await self._start()
        if self.pending:
            return self.pending.pop(0)
        return self._count(await self.receive())

    async def _start(self) -> None:
        policy = self.edge.policy(self.scope)
        self.limit = policy.limit
        length = self.headers.get("content-length")
        if length is not None and int(length) > policy.limit:
            raise _too_large(policy.limit)
        has_body = (length not in (None, "0")) or "transfer-encoding" in self.headers
        ctype = self.headers.get("content-type", "").split(";")[0].strip().lower()
        # checked once routed, so a wrong method is a 405 whatever the body says
        if has_body and self.scope["path"].startswith("/api/") and ctype not in BODY_TYPES_API:
            raise EdgeRefusal(415, "unsupported_media_type", f"content type {ctype or '(none)'} is not accepted")
        if policy.streamed:
            await _authenticate_first(self.scope)
            return
        body = await self._read_all()
        self.pending.append({"type": "http.request", "body": body, "more_body": False})
        problems = await self._text_problems(body)
        if problems:
            raise EdgeRefusal(422, "validation_error", summary(problems), {"fields": problems})

    def _count(self, message: Message) -> Message:
        if message["type"] == "http.request":
            self.seen += len(message.get("body", b""))
            if self.seen > self.limit:
                raise _too_large(self.limit)
        return message

    async def _read_all(self) -> bytes:
        chunks: list[bytes] = []
        while True:
            message = self._count(await self.receive())
            if message["type"] != "http.request":
                raise EdgeRefusal(400, "bad_request", "the client went away before sending the body")
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                return b"".join(chunks)

    async def _text_problems(self, body: bytes) -> list[dict[str, str]]:
        if not body:
            return []
        ctype = self.headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype == "application/x-www-form-urlencoded":
            return check_pairs(body, "body")
        if ctype == "multipart/form-data":
            return await _multipart_problems(self.scope, body)
        return check_json(body)


async def _multipart_problems(scope: Scope, body: bytes) -> list[dict[str, str]]:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    try:
        async with Request(scope, replay).form() as form:
            return check_form_items(list(form.multi_items()))
    except Exception:  # a malformed form is the route's to refuse, with its usual error
        return []


def allowed_methods(app: Any, path: str) -> list[str]:
    """Every method some route accepts at `path` (with HEAD and OPTIONS), empty when none matches."""
    table = getattr(app.state, "kap_route_methods", None)
    if table is None:
        table = []
        for route in iter_route_contexts(app.routes):
            if route.path and route.methods:
                table.append((compile_path(route.path)[0], set(route.methods)))
        app.state.kap_route_methods = table
    found: set[str] = set()
    for pattern, methods in table:
        if pattern.match(path):
            found |= methods
    if not found:
        return []
    if "GET" in found:
        found.add("HEAD")
    return sorted(found | {"OPTIONS"})


def _options(scope: Scope, request_id: str) -> Any:
    """OPTIONS answers which methods the path takes (there is no cross-origin access to grant)."""
    allowed = allowed_methods(scope["app"], scope["path"])
    if not allowed:
        return None
    response = Response(status_code=204, headers={"Allow": ", ".join(allowed), "X-Request-ID": request_id})
    return response


def _too_large(limit: int) -> EdgeRefusal:
    return EdgeRefusal(413, "payload_too_large", f"body larger than {limit} bytes")


async def _authenticate_first(scope: Scope) -> None:
    """Refuse an upload before its first byte is read: from a caller who is not signed in, and
    one the route's access check refuses (not a member, a role too low, an archived project)."""
    from kap.core.deps import ActionDependency, optional_identity  # the dependency layer builds on this module

    runtime = scope["app"].state.runtime
    request = Request(scope)
    try:
        identity = await optional_identity(request, runtime)
        if identity is None:
            raise EdgeRefusal(401, "unauthorized", "authentication required")
        route = scope.get("route")
        check = next((d.call for d in dependants(route.dependant) if isinstance(d.call, ActionDependency)),
                     None) if route is not None else None
        project_id = _project_id(request)
        if check is not None and project_id is not None:
            await run_in_threadpool(check.admit, request, identity, project_id)
    except KapError as exc:
        raise EdgeRefusal(exc.status, exc.code, exc.message, exc.details, exc.headers) from None


def _project_id(request: Request) -> uuid.UUID | None:
    """The project a request names (path or query); a malformed id is left to the route's own answer."""
    raw = request.path_params.get("project_id") or request.query_params.get("project_id")
    try:
        return uuid.UUID(str(raw)) if raw else None
    except ValueError:
        return None


# A downloaded file is never a page of Kap: even opened in the browser it runs no script and
# reaches no origin (stored HTML or SVG would otherwise run with the app's cookies).
DOWNLOAD_CSP = "sandbox; default-src 'none'; style-src 'unsafe-inline'; img-src data:"


def attachment_headers(name: str, size: int | None = None) -> dict[str, str]:
    """Headers every file download carries: attachment, no sniffing, sandboxed, not cached."""
    fallback = "".join(c if 32 <= ord(c) < 127 and c not in '"\\;' else "_" for c in name) or "download"
    headers = {"Content-Disposition": f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}",
               "X-Content-Type-Options": "nosniff", "Content-Security-Policy": DOWNLOAD_CSP,
               "Cache-Control": "private, no-store"}
    if size is not None:
        headers["Content-Length"] = str(size)
    return headers


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
    if isinstance(exc, EdgeRefusal):
        return _json_response(exc.status_code, envelope(exc.code, str(exc.detail), _request_id(request),
                                                        exc.details), _request_id(request),
                              dict(exc.headers or {}))
    codes = {404: "not_found", 405: "method_not_allowed", 400: "bad_request", 401: "unauthorized",
             413: "payload_too_large"}
    code = codes.get(exc.status_code, "http_error")
    message = str(exc.detail) if exc.status_code not in (404, 405) else code.replace("_", " ")
    headers = dict(exc.headers or {})
    if exc.status_code == 405:  # every method the path takes, not just the first route's
        headers["Allow"] = ", ".join(allowed_methods(request.app, request.url.path)) or headers.get("Allow", "")
    return _json_response(exc.status_code, envelope(code, message, _request_id(request)),
                          _request_id(request), headers)


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


def content_types(*media_types: str) -> dict[int | str, dict[str, Any]]:
    """`responses=` for a route whose 200 is a file: the media types it can carry."""
    return {200: {"content": {t: {"schema": {"type": "string", "format": "binary"}} for t in media_types}}}


def dumps(data: Any) -> str:
    return json.dumps(data, default=str)
