"""One definition of reach: the resolver, the project list, the app's subquery and the RLS SQL agree."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import select, text

from kap.core.db import Database
from kap.core.permissions import (
    ORG_ROLE_RANK,
    PROJECT_ROLE_RANK,
    Action,
    effective_role,
    org_admin_roles,
    outranks,
    roles_allowed,
)
from kap.core.scope import ProjectScope, reach, reachable_projects, trusted_scope, visible_project_ids
from tests.conftest import Factory, World


@pytest.fixture
def crowd(world: World, factory: Factory) -> World:
    """The world plus the combinations that matter: an org admin who is also a low member,
    an org member reaching nothing, and a user in no org at all."""
    both = factory.user(world.org1, "admin")
    factory.member(world.org1, world.project_a, both, "member")
    world.users["org_admin_and_member"] = both
    world.users["org_member_only"] = factory.user(world.org1, "member")
    world.users["nobody"] = factory.user(None)
    return world


def _projects(world: World) -> list[uuid.UUID]:
    return [world.project_a, world.project_b, world.project_c, uuid.uuid4()]


def test_reach_list_and_subquery_agree_for_every_user_and_project(db: Database, crowd: World) -> None:
    with db.service_session() as s:
        for who, uid in crowd.users.items():
            listed = {p.id: role for p, role in reachable_projects(s, uid)}
            subquery = set(s.scalars(select(visible_project_ids(uid).subquery().c[0])))
            for pid in _projects(crowd):
                found = reach(s, uid, pid)
                assert (found is not None) == (pid in listed) == (pid in subquery), (who, pid)
                if found is not None:
                    assert found.role == listed[pid], who
                    assert found.scope.project_id == pid, who


def test_reach_takes_the_higher_of_membership_and_org_role(db: Database, crowd: World) -> None:
    with db.service_session() as s:
        both = reach(s, crowd.users["org_admin_and_member"], crowd.project_a)
        assert both is not None
        assert both.role == "admin"
        assert reach(s, crowd.users["org_member_only"], crowd.project_a) is None
        assert reach(s, crowd.users["org_owner"], crowd.project_c) is None
        capped = reach(s, crowd.users["org_owner"], crowd.project_b, dev_role="lead")
        assert capped is not None
        assert capped.role == "lead"


@pytest.mark.postgres_only
def test_row_level_security_functions_are_the_same_rule(db: Database, crowd: World) -> None:
    for who, uid in crowd.users.items():
        with db.service_session() as s:
            expected = {p.id for p, _ in reachable_projects(s, uid, include_archived=True)}
        with db.app_session(uid) as s:
            seen = set(s.scalars(text("SELECT kap_visible_project_ids()")))
            assert seen == expected, who
            for pid in _projects(crowd):
                can = s.scalar(text("SELECT kap_can_see_project(:p)"), {"p": pid})
                assert can == (pid in expected), (who, pid)
            for org in (crowd.org1, crowd.org2):
                admin = s.scalar(text("SELECT kap_is_org_admin(:o)"), {"o": org})
                with db.service_session() as t:
                    role = t.scalar(text("SELECT role FROM org_members WHERE org_id = :o AND user_id = :u"),
                                    {"o": org, "u": uid})
                assert admin == (role in org_admin_roles()), (who, org)


def test_role_helpers_come_from_the_one_table() -> None:
    assert org_admin_roles() == ("owner", "admin")
    assert set(org_admin_roles()) <= set(ORG_ROLE_RANK)
    assert roles_allowed(Action.SIGNOFF_ALERTS) == ("owner", "admin", "pm")
    assert outranks("owner", "admin")
    assert not outranks("pm", "pm")
    assert effective_role("member", "admin") == "admin"
    assert effective_role("owner", "member") == "owner"
    assert effective_role(None, "member") is None
    assert effective_role("pm", None, dev_role="member") == "member"
    assert effective_role("member", None, dev_role="owner") == "member"
    assert all(effective_role(r, None) == r for r in PROJECT_ROLE_RANK)


def test_only_the_scope_module_mints_a_scope(db: Database, world: World) -> None:
    with pytest.raises(TypeError):
        ProjectScope(object(), world.org1, world.project_a, "user")
    with db.service_session() as s:
        scope = trusted_scope(s, world.project_a, purpose="test")
        assert scope is not None
        assert scope.trusted
        assert scope.org_id == world.org1
        assert trusted_scope(s, uuid.uuid4(), purpose="test") is None
        user = reach(s, world.users["member"], world.project_a)
        assert user is not None
        assert not user.scope.trusted
    with pytest.raises(AttributeError):
        scope.project_id = world.project_b


def test_a_second_permission_must_be_declared_on_the_route(db: Database, world: World) -> None:
    from dataclasses import replace

    from kap.core.deps import UndeclaredAction, resolve_project
    from kap.core.security import Identity

    with db.service_session() as s:
        ctx = resolve_project(s, Identity(via="dev", user_id=world.users["pm"]), world.project_a)
        assert ctx.may(Action.COMMS_MANAGE)  # outside a route's declaration: the table alone
        declared = replace(ctx, declared=frozenset({Action.SUBSCRIPTIONS_SELF, Action.COMMS_MANAGE}))
        assert declared.may(Action.COMMS_MANAGE)
        assert declared.may(Action.SUBSCRIPTIONS_SELF) is not False
        with pytest.raises(UndeclaredAction):
            declared.may(Action.BACKUPS_RESTORE)
