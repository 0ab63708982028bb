"""The tenant sentinel runs the real service reads against a target that holds a row in every
tenant table: it finds no leak, says nothing about whether the target exists, and says
`"leak": true` as soon as one read forgets its project filter."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import cast

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from kap.core.deps import ProjectContext
from kap.documents.models import Artifact
from kap.sentinel import reads
from tests.conftest import Factory, World
from tests.tenant_rows import rows_per_table, seed_every_table, tenant_table_names


@pytest.fixture
def seeded(world: World, factory: Factory) -> World:
    """Project A holds rows of its own; B (same org) and C (other org) one row in every tenant table."""
    from kap.core.runtime import Runtime  # noqa: F401  (the db comes through the factory)

    seed_every_table(factory.db, world.org1, world.project_a, world.users["owner"], "alpha")
    seed_every_table(factory.db, world.org1, world.project_b, world.users["b_member"], "bravo")
    seed_every_table(factory.db, world.org2, world.project_c, world.users["outsider"], "charlie")
    return world


def _run(client: TestClient, world: World, who: str, target: uuid.UUID) -> dict[str, object]:
    response = client.get("/api/sentinel/tenant-leak",
                          params={"project_id": str(world.project_a), "target_project_id": str(target)},
                          headers=world.h(who))
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_every_tenant_table_of_the_targets_holds_a_row(seeded: World, factory: Factory) -> None:
    for target in (seeded.project_b, seeded.project_c):
        counts = rows_per_table(factory.db, target)
        assert set(counts) == tenant_table_names()
        assert [name for name, n in counts.items() if n == 0] == []


def test_member_of_a_sees_no_leak_into_b_or_another_org(client: TestClient, seeded: World) -> None:
    for who in ("member", "owner"):
        for target in (seeded.project_b, seeded.project_c):
            body = _run(client, seeded, who, target)
            assert body["leak"] is False, body
            checks = body["checks"]
            assert isinstance(checks, list)
            names = {c["check"] for c in checks}
            assert {f"read:{p.name}" for p in reads.PROBES} <= names
            assert {f"table:{t}" for t in tenant_table_names()} <= names
            assert all(c.get("app_rows", 0) == 0 and not c.get("rls_rows") and not c.get("leaked")
                       for c in checks)
            assert not [c for c in checks if c.get("skipped")]


def test_sentinel_never_says_whether_the_target_exists(client: TestClient, seeded: World) -> None:
    real = _run(client, seeded, "member", seeded.project_b)
    unknown = _run(client, seeded, "member", uuid.uuid4())
    assert real == unknown


def test_caller_entitled_to_the_target_is_not_a_leak(client: TestClient, seeded: World) -> None:
    body = _run(client, seeded, "org_owner", seeded.project_b)
    assert body["leak"] is False
    assert body["authorized"] is True


def _unfiltered_documents(ctx: ProjectContext, _: reads.Hints) -> Iterable[reads.Returned]:
    """A read that forgot `Artifact.project_id == ctx.project_id`."""
    yield reads.Returned(Artifact.id, frozenset(ctx.session.scalars(select(Artifact.id))))


def test_a_read_without_its_project_filter_is_reported(client: TestClient, seeded: World,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(reads, "PROBES", [*reads.PROBES, reads.Probe("documents.unfiltered", _unfiltered_documents)])
    monkeypatch.setattr("kap.sentinel.api.PROBES", reads.PROBES)
    body = _run(client, seeded, "member", seeded.project_b)
    checks = {c["check"]: c for c in cast(list[dict[str, object]], body["checks"])}
    from tests.conftest import TEST_DB

    if TEST_DB == "sqlite":  # the application's filter is the only wall
        assert body["leak"] is True
        assert checks["read:documents.unfiltered"]["leaked"] == 2
    else:  # row-level security holds the second wall: the forgotten filter returns nothing of B
        assert body["leak"] is False
        assert checks["read:documents.unfiltered"]["leaked"] == 0
