"""Every JSON route declares the shape of its answer, so OpenAPI describes it and a change shows in review."""

from __future__ import annotations

import inspect
import types
import typing
from typing import Any

from fastapi.routing import APIRoute
from pydantic import BaseModel
from starlette.responses import Response

from kap.app import ROUTERS, create_app
from kap.core.schemas import Strict


def _api_routes() -> list[APIRoute]:
    return [r for router in ROUTERS for r in router.routes if isinstance(r, APIRoute)]


def _models(annotation: Any) -> list[Any]:
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return [m for arg in typing.get_args(annotation) for m in _models(arg)]
    return [annotation]


def _returns_response(route: APIRoute) -> bool:
    handler = inspect.unwrap(route.endpoint)  # a route class may wrap the handler
    answer = eval(handler.__annotations__["return"], handler.__globals__)  # noqa: S307
    return all(isinstance(m, type) and issubclass(m, Response) for m in _models(answer))


def test_every_json_route_answers_a_declared_schema() -> None:
    untyped = []
    for route in _api_routes():
        if route.response_model is None:
            if not _returns_response(route):
                untyped.append(f"{route.path}: no response model")
            continue
        loose = [m for m in _models(route.response_model) if not (isinstance(m, type) and issubclass(m, BaseModel))]
        if loose:
            untyped.append(f"{route.path}: answers {loose}")
    assert untyped == [], "give these routes a Read schema (the return annotation, or response_model=)"



def test_openapi_names_the_answer_of_a_typed_route() -> None:
    spec = create_app().openapi()["paths"]
    for route in _api_routes():
        if route.response_model is None or not route.include_in_schema:
            continue
        for method in (route.methods or set()) - {"HEAD"}:
            answers = spec[route.path_format][method.lower()]["responses"]
            ok = next(a for status, a in answers.items() if status.startswith("2"))
            schema = ok["content"]["application/json"]["schema"]
            assert {"$ref", "anyOf"} & set(schema), f"{method} {route.path}: {schema}"


def _subclasses(cls: type[BaseModel]) -> list[type[BaseModel]]:
    return [c for sub in cls.__subclasses__() for c in [sub, *_subclasses(sub)]]


def _lax_bools(annotation: Any) -> bool:
    """Whether a field takes a plain bool somewhere (which would accept 0, 1, "yes" and "off")."""
    if annotation is bool:
        return True
    if typing.get_origin(annotation) is typing.Annotated:
        base, *extra = typing.get_args(annotation)
        return base is bool and not any(getattr(e, "strict", False) for e in extra)
    return any(_lax_bools(arg) for arg in typing.get_args(annotation))


def test_request_bodies_take_true_and_false_only() -> None:
    # kap.app has imported every router, and so every body schema.
    lax = [f"{model.__module__}.{model.__name__}.{name}" for model in _subclasses(Strict)
           for name, info in model.model_fields.items() if _lax_bools(info.annotation)]
    assert lax == [], f"use StrictBool: {lax}"
