"""The route class of Kap's API routers: a sync handler's answer is checked and serialised in its own thread.

FastAPI runs a sync handler in a worker thread, then checks its answer against the response
model in a second worker-thread hop (it always does for a sync handler). `AnswerInThread`
does the check and the JSON serialisation at the end of the handler's own hop, with the same
field FastAPI would use, and hands FastAPI the finished response. The OpenAPI document is
unchanged: the route keeps the handler's signature and return annotation.

Routes whose answer FastAPI shapes further keep FastAPI's own path: a handler that returns a
`Response`, a custom response class, a status without a body, response-model options, and
any route whose handler or dependencies take the `Response` to set headers or a status.

A list of many rows may skip the model altogether: `json_answer` serialises plain values the
database already typed (a `uuid.UUID`, an aware `datetime`) in one pydantic-core call, the same
JSON the model would give, without building and checking a model per row. Such a route names
its model with `response_model=` (OpenAPI is unchanged) and returns the `Response`.

A short read marked `@read_on_loop` (a page of a list, one row) runs on the event loop when its
session is SQLite's: the read is of a local file, which in WAL mode never waits for a writer,
and under load a worker-thread hop waits for the GIL longer than such a read takes. On
PostgreSQL, whose reads wait on the network, its `postgres` twin (an async handler taking the
same arguments) reads through `LoopReads` on the loop; without one it keeps its worker thread.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import pydantic_core
from fastapi.datastructures import DefaultPlaceholder
from fastapi.exceptions import ResponseValidationError
from fastapi.routing import APIRoute
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from kap.core.db import loop_reads

_NO_BODY = {204, 205, 304}


class AnswerInThread(APIRoute):
    """An APIRoute whose sync handler validates and serialises its answer in its own worker thread."""

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        self._answers: bool | None = None
        if _plain_sync(endpoint):
            on_loop = getattr(inspect.unwrap(endpoint), _ON_LOOP, None)
            endpoint = self._answering(endpoint)  # `inspect.unwrap` gives the handler back
            if on_loop is not None:
                endpoint = _on_loop_if_local(endpoint, on_loop or None)
        super().__init__(path, endpoint, **kwargs)

    def _answering(self, handler: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(handler)
        def answered(*args: Any, **kwargs: Any) -> Any:
            return self._answer(handler(*args, **kwargs))
        return answered

    def _answer(self, content: Any) -> Any:
        if isinstance(content, Response) or not self._answers_itself():
            return content
        field = self.response_field
        assert field is not None
        value, errors = field.validate(content, {}, loc=("response",))
        if errors:
            raise ResponseValidationError(errors=errors, body=content)
        body = field.serialize_json(value, by_alias=self.response_model_by_alias)
        return Response(body, status_code=self.status_code or 200, media_type="application/json")

    def _answers_itself(self) -> bool:
        """Whether the route's answer is exactly the model's JSON (decided once, on first use)."""
        if self._answers is None:
            self._answers = (
                self.response_field is not None
                and isinstance(self.response_class, DefaultPlaceholder)
                and (self.status_code or 200) not in _NO_BODY
                and not (self.response_model_include or self.response_model_exclude
                         or self.response_model_exclude_unset or self.response_model_exclude_defaults
                         or self.response_model_exclude_none)
                and not any(d.response_param_name for d in dependants(self.dependant)))
        return self._answers


_ON_LOOP = "_kap_read_on_loop"
Handler = TypeVar("Handler", bound=Callable[..., Any])


def read_on_loop(*, postgres: Callable[..., Awaitable[Any]] | None = None) -> Callable[[Handler], Handler]:
    """Mark a sync handler as a short read that runs on the event loop over SQLite, and over
    PostgreSQL as its `postgres` twin (see above)."""
    def mark(handler: Handler) -> Handler:
        setattr(handler, _ON_LOOP, postgres or False)
        return handler
    return mark


def _on_loop_if_local(answered: Callable[..., Any], twin: Callable[..., Awaitable[Any]] | None) -> Callable[..., Any]:
    @functools.wraps(answered)
    async def read(*args: Any, **kwargs: Any) -> Any:
        session = _session_among(kwargs.values())
        if session is not None and session.get_bind().dialect.name == "sqlite":
            return answered(*args, **kwargs)
        if twin is not None and session is not None and loop_reads(session) is not None:
            return await twin(*args, **kwargs)
        return await run_in_threadpool(answered, *args, **kwargs)
    return read


def _session_among(values: Any) -> Session | None:
    """The request's session among a handler's arguments (itself, or a context's)."""
    for value in values:
        session = value if isinstance(value, Session) else getattr(value, "session", None)
        if isinstance(session, Session):
            return session
    return None


def json_answer(content: dict[str, Any]) -> Response:
    """The JSON answer of plain values, in the order given, serialised once by pydantic-core.

    The values must be what the route's model would hold (a `uuid.UUID` for an id, an aware
    `datetime`, a literal's text): the answer is not checked against the model.
    """
    return Response(pydantic_core.to_json(content), media_type="application/json")


def _plain_sync(endpoint: Callable[..., Any]) -> bool:
    target = inspect.unwrap(endpoint)
    return not (inspect.iscoroutinefunction(target) or inspect.isgeneratorfunction(target)
                or inspect.isasyncgenfunction(target))


def dependants(dependant: Any) -> Iterator[Any]:
    """A route's dependant and every dependency under it."""
    yield dependant
    for sub in dependant.dependencies:
        yield from dependants(sub)
