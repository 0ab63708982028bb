"""The API route class: a sync handler's answer is checked and serialised in the handler's own thread."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from fastapi import APIRouter, FastAPI, Response
from fastapi.exceptions import ResponseValidationError
from fastapi.routing import iter_route_contexts
from fastapi.testclient import TestClient
from pydantic import BaseModel, field_serializer

from kap.app import create_app
from kap.core.routes import AnswerInThread
from kap.core.runtime import Runtime

threads: dict[str, int] = {}


class Answer(BaseModel):
    name: str
    count: int

    @field_serializer("name")
    def _name(self, name: str) -> str:
        threads["answer"] = threading.get_ident()
        return name.upper()


def _app() -> TestClient:
    router = APIRouter(route_class=AnswerInThread)

    @router.get("/answer")
    def answer() -> Answer:
        threads["handler"] = threading.get_ident()
        return Answer(name="kickoff", count=3)

    @router.get("/headers")
    def with_headers(response: Response) -> Answer:
        response.headers["X-Sheet"] = "RAID"
        response.status_code = 202
        return Answer(name="raid", count=1)

    @router.get("/wrong")
    def wrong() -> Answer:
        return {"name": "no count"}  # type: ignore[return-value]

    app = FastAPI()
    app.include_router(router)
    return TestClient(app)


def test_a_sync_handler_and_its_answer_run_in_one_thread() -> None:
    threads.clear()
    response = _app().get("/answer")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"name": "KICKOFF", "count": 3}
    assert threads["answer"] == threads["handler"]


def test_a_handler_that_sets_headers_keeps_them() -> None:
    response = _app().get("/headers")
    assert (response.status_code, response.headers["x-sheet"]) == (202, "RAID")
    assert response.json() == {"name": "RAID", "count": 1}


def test_an_answer_that_breaks_its_model_is_refused() -> None:
    with pytest.raises(ResponseValidationError):
        _app().get("/wrong")


def test_every_api_route_answers_in_its_handlers_thread(runtime: Runtime) -> None:
    routes = [route for route in iter_route_contexts(create_app(runtime=runtime).routes)
              if getattr(route.original_route, "include_in_schema", False)]
    assert len(routes) > 80
    assert [route.path_format for route in routes if not isinstance(route.original_route, AnswerInThread)] == []


def test_a_project_scoped_route_solves_two_dependencies(runtime: Runtime) -> None:
    """The choke point and the session: `user_session` resolves the runtime and the caller itself,
    so FastAPI walks no further dependencies on a project GET."""
    from kap.core.deps import ActionDependency, user_session

    route = next(route for route in iter_route_contexts(create_app(runtime=runtime).routes)
                 if route.path_format == "/api/projects/{project_id}" and "GET" in (route.methods or ()))
    (choke,) = route.dependant.dependencies
    assert isinstance(choke.call, ActionDependency)
    assert [d.call for d in choke.dependencies] == [user_session]
    assert choke.dependencies[0].dependencies == []


def test_a_project_get_ends_its_transaction_with_the_access_check(client: Any, world: Any,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """No second worker-thread hop to end the GET's transaction; a write still commits after its handler."""
    from kap.core import deps

    ended: list[bool] = []
    finish = deps._finish

    def recorded(session: Any, ok: bool) -> None:
        ended.append(ok)
        finish(session, ok)

    monkeypatch.setattr(deps, "_finish", recorded)
    got = client.get(f"/api/projects/{world.project_a}", headers=world.h("owner"))
    assert got.status_code == 200
    assert got.json()["id"] == str(world.project_a)
    assert ended == []
    renamed = client.patch(f"/api/projects/{world.project_a}", json={"name": "Renamed"}, headers=world.h("owner"))
    assert renamed.status_code == 200
    assert ended == [True]
    assert client.get(f"/api/projects/{world.project_a}", headers=world.h("owner")).json()["name"] == "Renamed"


def test_short_reads_take_no_worker_thread(client: Any, world: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """A project GET and the lists of projects and documents run on the event loop (a worker-thread hop
    waits longer for the GIL under load than such a read takes): on SQLite as they are, on PostgreSQL
    through `LoopReads`. A write keeps its worker thread."""
    import anyio.to_thread

    hops: list[str] = []
    real = anyio.to_thread.run_sync

    async def counted(func: Any, *args: Any, **kwargs: Any) -> Any:
        hops.append(getattr(func, "__name__", repr(func)))
        return await real(func, *args, **kwargs)

    monkeypatch.setattr(anyio.to_thread, "run_sync", counted)
    owner = world.h("owner")
    reads = [f"/api/projects/{world.project_a}", "/api/projects", f"/api/documents?project_id={world.project_a}"]
    assert client.get("/api/projects", headers=owner).status_code == 200  # the caller is now known: no look-up
    for url in reads:
        hops.clear()
        response = client.get(url, headers=owner)
        assert response.status_code == 200, response.text
        assert hops == [], (url, hops)
    hops.clear()
    renamed = client.patch(f"/api/projects/{world.project_a}", json={"name": "Renamed"}, headers=owner)
    assert renamed.status_code == 200
    assert hops, "a write runs in a worker thread"
    listed = {p["id"]: p["name"] for p in client.get("/api/projects", headers=owner).json()["projects"]}
    assert listed[str(world.project_a)] == "Renamed"
