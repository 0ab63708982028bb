"""Errors as values with a status, and the one JSON envelope they render to."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

Declarable = TypeVar("Declarable", bound=Callable[..., Any])


class KapError(Exception):
    """A business error: a stable code, a message for people, an HTTP status.

    A subclass names one kind of error; routes declare the kinds they answer
    (`kap.core.openapi.raises`), so the OpenAPI document lists every status.
    """

    status = 400
    code = "bad_request"

    def __init__(self, message: str | None = None, *, code: str | None = None,
                 status: int | None = None, details: dict[str, Any] | None = None,
                 headers: dict[str, str] | None = None) -> None:
        self.message = message or self.default_message()
        if code:
            self.code = code
        if status:
            self.status = status
        self.details = details or {}
        self.headers = headers or {}
        super().__init__(self.message)

    def default_message(self) -> str:
        return self.code.replace("_", " ")


class BadRequest(KapError):
    status, code = 400, "bad_request"


class Unauthorized(KapError):
    status, code = 401, "unauthorized"

    def default_message(self) -> str:
        return "authentication required"


class Forbidden(KapError):
    status, code = 403, "forbidden"

    def default_message(self) -> str:
        return "your role does not allow this"


class NotFound(KapError):
    status, code = 404, "not_found"

    def default_message(self) -> str:
        return "not found"


class Conflict(KapError):
    status, code = 409, "conflict"


class Busy(Conflict):
    status, code = 409, "busy"

    def default_message(self) -> str:
        return "the object is being processed; try again when it is done"


class ProjectArchived(Conflict):
    """A change to an archived project, which is read-only until it is unarchived."""

    code = "project_archived"

    def default_message(self) -> str:
        return "the project is archived; unarchive it to make changes"


class Gone(KapError):
    status, code = 410, "gone"


class PayloadTooLarge(KapError):
    status, code = 413, "payload_too_large"


class UnsupportedMediaType(KapError):
    status, code = 415, "unsupported_media_type"


class ValidationFailed(KapError):
    status, code = 422, "validation_error"


class RateLimited(KapError):
    status, code = 429, "rate_limited"

    def default_message(self) -> str:
        return "too many requests"


class DbNotReady(KapError):
    status, code = 503, "db_not_ready"

    def default_message(self) -> str:
        return "the database is not ready"


class ServiceUnavailable(KapError):
    status, code = 503, "unavailable"


class NotConfigured(ServiceUnavailable):
    """A feature the server was not configured for (a deliberate 503, not an outage)."""

    status, code = 503, "not_configured"


class MethodNotAllowed(KapError):
    status, code = 405, "method_not_allowed"


def raises(*errors: type[KapError]) -> Callable[[Declarable], Declarable]:
    """Declare the errors a route or a dependency answers beyond those its parts imply.

    `@raises(Busy)` under `@router.post(...)`: the OpenAPI document lists each declared
    status with the error envelope (see `kap.core.openapi`). Dependencies carry theirs,
    so a route lists the statuses of everything it depends on without repeating them.
    """
    def declare(target: Declarable) -> Declarable:
        known: tuple[type[KapError], ...] = getattr(target, "__kap_raises__", ())
        target.__kap_raises__ = (*known, *errors)  # type: ignore[attr-defined]
        return target
    return declare


def declared_errors(target: object) -> tuple[type[KapError], ...]:
    """The errors declared on a route, a dependency function or a dependency's class."""
    found: tuple[type[KapError], ...] = getattr(target, "__kap_raises__", ())
    return found


def envelope(code: str, message: str, request_id: str | None,
             details: dict[str, Any] | None = None) -> dict[str, Any]:
    """Build the error body every failing response carries."""
    error: dict[str, Any] = {"code": code, "message": message}
    if details:
        error["details"] = details
    return {"ok": False, "error": error, "request_id": request_id}
