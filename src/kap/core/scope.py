"""Who reaches which project, and the scope type only this module mints.

`reach` is the one definition of "user U reaches project P with role R": a
project membership, or an org role that administers the project's org, the higher
of the two. `visible_project_ids` is the same rule as a subquery, and the SQL
function behind row-level security (`kap_visible_project_ids` in `core/rls.py`) is
generated from the same role names and tested against `reach`.

A `ProjectScope` is the proof that a caller reached a project. Only two functions
create one: `reach` (for a user, through the choke point in `core/deps.py`) and
`trusted_scope` (for trusted work that names a project itself: jobs, the scheduler,
token and webhook routes, the internal bearer). Functions that read or write a
tenant table take a scope, or a `ProjectContext` carrying one; `scripts/lint_scope.py`
checks that.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple, final

from sqlalchemy import Select, Uuid, and_, bindparam, literal, or_, select
from sqlalchemy.orm import Session

from kap.core.db import LoopReads, as_utc, joined_begin, pg_text
from kap.core.models import OrgMember, Project, ProjectMember
from kap.core.permissions import effective_role, org_admin_roles

_MINT = object()


@final
class ProjectScope:
    """One project a caller has reached: its org and id, and how it was reached."""

    __slots__ = ("org_id", "project_id", "via")
    org_id: uuid.UUID
    project_id: uuid.UUID
    via: str

    def __init__(self, key: object, org_id: uuid.UUID, project_id: uuid.UUID, via: str) -> None:
        if key is not _MINT:
            raise TypeError("a ProjectScope is minted only by kap.core.scope (reach or trusted_scope)")
        object.__setattr__(self, "org_id", org_id)
        object.__setattr__(self, "project_id", project_id)
        object.__setattr__(self, "via", via)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("a ProjectScope is immutable")

    def __repr__(self) -> str:
        return f"ProjectScope(project_id={self.project_id}, via={self.via!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ProjectScope) and (self.project_id, self.via) == (other.project_id, other.via)

    def __hash__(self) -> int:
        return hash((self.project_id, self.via))

    @property
    def trusted(self) -> bool:
        """Whether the scope was minted for service work rather than reached by a user."""
        return self.via.startswith("service:")


# What a reach reads of the project, and what a list of projects shows: plain columns, no ORM
# objects to build and track (id, org_id, name, created_at, archived_at).
PROJECT_LIST_COLUMNS = (Project.id, Project.org_id, Project.name, Project.created_at, Project.archived_at)


@dataclass(frozen=True)
class Reach:
    """A user's reach into one project: the scope, the project's name, the role, and whether
    the project is archived (read-only)."""

    scope: ProjectScope
    project_name: str
    role: str
    # The project's columns as the reach query read them (`PROJECT_LIST_COLUMNS`).
    project: Any = None
    archived: bool = False


def _reach_statement(uid: Any, *project: Any) -> Select[Any]:
    return (
        select(*(project or (Project,)), ProjectMember.role, OrgMember.role)
        .outerjoin(ProjectMember, and_(ProjectMember.project_id == Project.id, ProjectMember.user_id == uid))
        .outerjoin(OrgMember, and_(OrgMember.org_id == Project.org_id, OrgMember.user_id == uid))
    )


def _reaches() -> Any:
    # The roles as bound values of the statement, not an expanding `IN` list: the statement's text
    # is then complete when compiled (`pg_text`).
    return or_(ProjectMember.id.is_not(None), OrgMember.role.in_([literal(role) for role in org_admin_roles()]))


# Built once: these run on every project-scoped request and every list of projects. They run on
# the session's connection (the same transaction, with row-level security set): the ORM's
# execution path would cost more than SQLite's whole query.
_UID = bindparam("uid", type_=Uuid())
_PROJECT_REACH = _reach_statement(_UID, *PROJECT_LIST_COLUMNS).where(Project.id == bindparam("pid", type_=Uuid()))
_REACHABLE = _reach_statement(_UID, *PROJECT_LIST_COLUMNS).where(_reaches()).order_by(Project.created_at, Project.id)
_REACHABLE_LIVE = _REACHABLE.where(Project.archived_at.is_(None))


def reach(session: Session, user_id: uuid.UUID, project_id: uuid.UUID,
          dev_role: str | None = None, *, alone: bool = False) -> Reach | None:
    """The user's reach into a project, or None when it is out of reach (or does not exist).

    `alone`: the caller ends the transaction right after, so on PostgreSQL the RLS settings and the
    query are the whole transaction, in one round trip (`joined_begin`)."""
    with joined_begin(session, alone=alone) as connection:  # with RLS: the settings leave with the query
        row = connection.execute(_PROJECT_REACH, {"uid": user_id, "pid": project_id}).first()
    return _reach_of(row, dev_role)


class ReachRow(NamedTuple):
    """The reach query's row as `reach_on_loop` reads it (the columns of `_PROJECT_REACH`)."""

    id: uuid.UUID
    org_id: uuid.UUID
    name: str
    created_at: datetime | None
    archived_at: datetime | None
    project_role: str | None
    org_role: str | None


def _reach_row(found: tuple[Any, ...]) -> ReachRow:
    project_id, org_id, name, created_at, archived_at, project_role, org_role = found
    return ReachRow(project_id, org_id, name, as_utc(created_at), as_utc(archived_at), project_role, org_role)


async def reach_on_loop(reads: LoopReads, user_id: uuid.UUID, project_id: uuid.UUID,
                        dev_role: str | None = None) -> Reach | None:
    """`reach` as one read on the event loop (PostgreSQL): the same query, rule and answer, for a
    route whose whole work is the access check."""
    found = await reads.first(user_id, *pg_text(_PROJECT_REACH, {"uid": user_id, "pid": project_id}))
    return None if found is None else _reach_of(_reach_row(found), dev_role)


async def reachable_projects_on_loop(reads: LoopReads, user_id: uuid.UUID, dev_role: str | None = None, *,
                                     include_archived: bool = False) -> list[tuple[Any, str]]:
    """`reachable_projects` as one read on the event loop (PostgreSQL): the same rows and roles."""
    stmt = _REACHABLE if include_archived else _REACHABLE_LIVE
    return _with_roles(map(_reach_row, await reads.rows(user_id, *pg_text(stmt, {"uid": user_id}))), dev_role)


def _reach_of(row: Any, dev_role: str | None) -> Reach | None:
    if row is None:
        return None
    role = effective_role(row[-2], row[-1], dev_role)
    if role is None:
        return None
    return Reach(ProjectScope(_MINT, row.org_id, row.id, "user"), row.name, role, row,
                 archived=row.archived_at is not None)


def reachable_projects(session: Session, user_id: uuid.UUID, dev_role: str | None = None, *,
                       include_archived: bool = False) -> list[tuple[Any, str]]:
    """Every project the user reaches, oldest first, with the role they act with.

    Each project is a row of `PROJECT_LIST_COLUMNS` (id, org_id, name, created_at, archived_at).
    """
    stmt = _REACHABLE if include_archived else _REACHABLE_LIVE
    # All rows in one driver call rather than one call per row (through the server, with the event
    # loop busy on the other connections, the per-row fetches were a third of the list's samples).
    return _with_roles(session.connection().execute(stmt, {"uid": user_id}).all(), dev_role)


def _with_roles(rows: Iterable[Any], dev_role: str | None) -> list[tuple[Any, str]]:
    """The reach rows the user reaches, each with the role they act with."""
    out = []
    for row in rows:
        role = effective_role(row[-2], row[-1], dev_role)
        if role is not None:
            out.append((row, role))
    return out


def visible_project_ids(user_id: uuid.UUID | None) -> Any:
    """The ids of the projects a user reaches, as a subquery (the rule of `reach`, in SQL)."""
    members = select(ProjectMember.project_id).where(ProjectMember.user_id == user_id)
    via_org = (select(Project.id).join(OrgMember, OrgMember.org_id == Project.org_id)
               .where(OrgMember.user_id == user_id, OrgMember.role.in_(org_admin_roles())))
    return members.union(via_org)


def live_project_ids() -> Any:
    """The ids of the projects not archived, as a subquery: scheduled work skips the others."""
    return select(Project.id).where(Project.archived_at.is_(None))


def trusted_scope(session: Session, project_id: uuid.UUID, *, purpose: str,
                  org_id: uuid.UUID | None = None) -> ProjectScope | None:
    """A scope for trusted work on a project it names itself; None when there is no such project.

    This is the one place trusted paths get a scope from: grep for `trusted_scope(` to
    list them. `purpose` says which path it is (it shows in the scope's `via`). Work that
    already read the project's row (a job walking every project) passes its `org_id`.
    """
    if org_id is None:
        org_id = session.scalar(select(Project.org_id).where(Project.id == project_id))
        if org_id is None:
            return None
    return ProjectScope(_MINT, org_id, project_id, f"service:{purpose}")
