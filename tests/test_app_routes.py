"""Serving the busiest routers first changes no path's route.

Every path any route can take is tried against the app as served and against the routers in
the order they were declared: each route's own path (its parameters filled in), and for every
pair of routes the path both could take (literal where either has a literal). Whichever route
FastAPI would try first among those that match must be the same in both orders.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterator
from typing import Any

from fastapi import FastAPI
from fastapi.routing import iter_route_contexts
from starlette.routing import Match

from kap.app import ROUTERS, create_app, serving_order
from kap.core.runtime import Runtime

FILLER = str(uuid.UUID(int=7))


def _segments(route: Any) -> list[str | None]:
    """The route's path split on `/`, a parameter as None."""
    return [None if part.startswith("{") else part for part in str(route.path_format).split("/")]


def _paths(routes: list[Any]) -> Iterator[str]:
    shapes = [_segments(route) for route in routes]
    for shape in shapes:
        yield "/".join(FILLER if part is None else part for part in shape)
    for one, other in itertools.combinations(shapes, 2):
        if len(one) != len(other) or any(a and b and a != b for a, b in zip(one, other, strict=True)):
            continue
        yield "/".join(a or b or FILLER for a, b in zip(one, other, strict=True))


def _first(routes: list[Any], method: str, path: str) -> tuple[str, str, str] | None:
    scope = {"type": "http", "method": method, "path": path, "root_path": "", "headers": [], "query_string": b""}
    for route in routes:
        if route.matches(scope)[0] == Match.FULL:
            return str(route.path_format), route.endpoint.__module__, route.endpoint.__qualname__
    return None


def _routes(app: FastAPI) -> list[Any]:
    return [route for route in iter_route_contexts(app.routes) if getattr(route, "path_format", None)]


def _declared() -> FastAPI:
    app = FastAPI()
    for router in ROUTERS:
        app.include_router(router)
    return app


def test_busiest_routers_are_served_first(runtime: Runtime) -> None:
    served = [str(route.path_format) for route in _routes(create_app(runtime=runtime))]
    declared = [str(route.path_format) for route in _routes(_declared())]
    for path in ("/api/documents", "/api/projects/{project_id}"):
        assert served.index(path) < declared.index(path) / 2
    assert sorted(map(id, serving_order())) == sorted(map(id, ROUTERS))


def test_every_path_reaches_the_route_it_reached_in_the_declared_order(runtime: Runtime) -> None:
    served, declared = _routes(create_app(runtime=runtime)), _routes(_declared())
    methods = sorted({m for route in declared for m in (route.methods or ())})
    paths = sorted(set(_paths(declared)))
    assert len(paths) > len(declared)
    moved = [(method, path, _first(declared, method, path), _first(served, method, path))
             for path in paths for method in methods
             if _first(declared, method, path) != _first(served, method, path)]
    assert moved == []
