"""Projects and project membership: the rules, never the commit."""

from __future__ import annotations

import uuid
from typing import Any

from pydantic import TypeAdapter
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from kap.core.audit import record_audit
from kap.core.branding import brand_of
from kap.core.db import LoopReads, utcnow
from kap.core.deps import ProjectContext
from kap.core.errors import Conflict, Forbidden, NotFound, ValidationFailed
from kap.core.login import Invitation
from kap.core.models import Org, OrgMember, Project, ProjectMember, User
from kap.core.permissions import Action, may_create_projects, org_admin_roles, outranks
from kap.core.scope import reachable_projects, reachable_projects_on_loop
from kap.core.security import Identity
from kap.projects.schemas import MemberRead, ProjectRead

_PROJECT_READS: TypeAdapter[list[ProjectRead]] = TypeAdapter(list[ProjectRead])


def caller_org(session: Session, identity: Identity, org_id: uuid.UUID | None) -> uuid.UUID:
    """The org a new project goes into: the one asked for, the dev org, or the caller's only org."""
    wanted = org_id or identity.dev_org
    rows = session.execute(select(OrgMember.org_id).where(OrgMember.user_id == identity.user_id)).scalars().all()
    if wanted is not None:
        if wanted not in rows:
            raise NotFound("org not found")
        return wanted
    if not rows:
        raise Forbidden("you are not a member of any org", code="no_org")
    if len(rows) > 1:
        raise ValidationFailed("you belong to several orgs: give org_id", details={"field": "org_id"})
    return rows[0]


def check_may_create(session: Session, identity: Identity, org_id: uuid.UUID) -> None:
    """Refuse a caller the org's `project_creators` setting leaves out, naming who can."""
    org = session.get(Org, org_id)
    role = session.scalar(select(OrgMember.role).where(OrgMember.org_id == org_id,
                                                       OrgMember.user_id == identity.user_id))
    if org is None or may_create_projects(role, org.project_creators):
        return
    names = session.scalars(
        select(func.coalesce(User.name, User.email)).join(OrgMember, OrgMember.user_id == User.id)
        .where(OrgMember.org_id == org_id, OrgMember.role.in_(org_admin_roles()))
        .order_by(User.name, User.email).limit(3)).all()
    ask = f" Ask {' or '.join(n for n in names if n)} to create it," if any(names) else " Ask one of them to create it,"
    raise Forbidden(f"Only the owners and admins of {org.brand} can create projects.{ask} "
                    "or to let every member create projects in the org settings.",
                    code="project_create_forbidden",
                    details={"project_creators": org.project_creators, "org_role": role})


def creation_refusal(session: Session, identity: Identity) -> str | None:
    """Why the caller may create a project in none of their orgs; None when they may in one (or have none)."""
    refusal = None
    for org in session.scalars(select(OrgMember.org_id).where(OrgMember.user_id == identity.user_id)).all():
        try:
            check_may_create(session, identity, org)
            return None
        except Forbidden as refused:
            refusal = refused.message
    return refusal


def create_project(session: Session, identity: Identity, name: str, org_id: uuid.UUID | None,
                   *, ip: str | None = None, user_agent: str | None = None) -> ProjectRead:
    """Create a project in the caller's org with the caller as its owner."""
    assert identity.user_id is not None
    org = caller_org(session, identity, org_id)
    check_may_create(session, identity, org)
    project = Project(org_id=org, name=name, created_by=identity.user_id)
    session.add(project)
    session.flush()
    session.add(ProjectMember(org_id=org, project_id=project.id, user_id=identity.user_id, role="owner"))
    record_audit(session, org_id=org, project_id=project.id, actor_id=identity.user_id,
                 actor_label=identity.label, action="project.created", target_type="project",
                 target_id=str(project.id), details={"name": name}, ip=ip, user_agent=user_agent)
    session.flush()
    return ProjectRead(id=project.id, org_id=org, name=name, role="owner", created_at=project.created_at)


def list_projects(session: Session, identity: Identity, *, include_archived: bool = False) -> list[ProjectRead]:
    """Every project the caller can reach, with the role they act with."""
    return _PROJECT_READS.validate_python(listed_projects(session, identity, include_archived=include_archived))


def listed_projects(session: Session, identity: Identity, *,
                    include_archived: bool = False) -> list[dict[str, Any]]:
    """`list_projects` as plain values in `ProjectRead`'s order, ready to serialise."""
    if identity.user_id is None:
        return []
    return _project_views(reachable_projects(session, identity.user_id, identity.dev_role,
                                             include_archived=include_archived))


async def listed_projects_on_loop(reads: LoopReads, identity: Identity, *,
                                  include_archived: bool = False) -> list[dict[str, Any]]:
    """`listed_projects` as one read on the event loop (PostgreSQL, see `LoopReads`)."""
    if identity.user_id is None:
        return []
    return _project_views(await reachable_projects_on_loop(reads, identity.user_id, identity.dev_role,
                                                           include_archived=include_archived))


def _project_views(rows: list[tuple[Any, str]]) -> list[dict[str, Any]]:
    return [{"id": p.id, "org_id": p.org_id, "name": p.name, "role": role, "created_at": p.created_at,
             "archived_at": p.archived_at} for p, role in rows]


def get_project(ctx: ProjectContext) -> ProjectRead:
    """The project as the context's reach read it (no I/O: an async route may call it)."""
    assert ctx.project_row is not None
    return _read(ctx, ctx.project_row)


def _read(ctx: ProjectContext, project: Any) -> ProjectRead:
    return ProjectRead(id=project.id, org_id=project.org_id, name=project.name, role=ctx.role,
                       created_at=project.created_at, archived_at=project.archived_at)


def rename_project(ctx: ProjectContext, name: str) -> ProjectRead:
    """Rename a project."""
    project = ctx.session.get(Project, ctx.project_id)
    assert project is not None
    old, project.name = project.name, name
    ctx.audit("project.renamed", "project", project.id, old=old, new=name)
    ctx.session.flush()
    return _read(ctx, project)


def archive_project(ctx: ProjectContext) -> ProjectRead:
    """Archive a project: hidden from lists and read-only, its data kept, its sign-off links paused."""
    project = ctx.session.get(Project, ctx.project_id)
    assert project is not None
    if project.archived_at is None:
        project.archived_at = utcnow()
        ctx.audit("project.archived", "project", project.id)
        ctx.session.flush()
    return _read(ctx, project)


def unarchive_project(ctx: ProjectContext) -> ProjectRead:
    """Unarchive a project: it can be changed again, its sign-off links and schedules resume."""
    project = ctx.session.get(Project, ctx.project_id)
    assert project is not None
    if project.archived_at is not None:
        project.archived_at = None
        ctx.audit("project.unarchived", "project", project.id)
        ctx.session.flush()
    return _read(ctx, project)


def list_members(ctx: ProjectContext) -> list[MemberRead]:
    rows = ctx.session.execute(
        select(ProjectMember, User).join(User, User.id == ProjectMember.user_id)
        .where(ProjectMember.project_id == ctx.project_id).order_by(ProjectMember.created_at, User.id)
    ).all()
    return [MemberRead(user_id=u.id, email=u.email, name=u.name, role=m.role, created_at=m.created_at)
            for m, u in rows]


def _member(ctx: ProjectContext, user_id: uuid.UUID) -> ProjectMember:
    member = ctx.session.scalar(select(ProjectMember).where(
        ProjectMember.project_id == ctx.project_id, ProjectMember.user_id == user_id))
    if member is None:
        raise NotFound("member not found")
    return member


def check_can_grant(ctx: ProjectContext, role: str) -> None:
    """Refuse a role above the caller's own."""
    if outranks(role, ctx.role):
        raise Forbidden(f"you cannot grant a role above your own ({ctx.role})")


def _owner_count(ctx: ProjectContext) -> int:
    return ctx.session.scalar(select(func.count()).select_from(ProjectMember).where(
        ProjectMember.project_id == ctx.project_id, ProjectMember.role == "owner")) or 0


def add_member(ctx: ProjectContext, user: User, role: str, *, invited: bool) -> MemberRead:
    """Add a user to the project with a role no higher than the caller's."""
    check_can_grant(ctx, role)
    ensure_not_member(ctx, user.id)
    member = ProjectMember(org_id=ctx.org_id, project_id=ctx.project_id, user_id=user.id, role=role)
    ctx.session.add(member)
    ctx.audit("member.invited" if invited else "member.added", "user", user.id, role=role,
           email=user.email)
    ctx.session.flush()
    return MemberRead(user_id=user.id, email=user.email, name=user.name, role=role,
                      created_at=member.created_at)


def ensure_not_member(ctx: ProjectContext, user_id: uuid.UUID) -> None:
    """Raise 409 when the user already belongs to the project."""
    exists = ctx.session.scalar(select(ProjectMember.id).where(
        ProjectMember.project_id == ctx.project_id, ProjectMember.user_id == user_id))
    if exists is not None:
        raise Conflict("already a member of this project", code="already_member")


def org_user(ctx: ProjectContext, user_id: uuid.UUID) -> User:
    """A user of the project's org, or the one 404."""
    user = ctx.session.scalar(select(User).join(OrgMember, OrgMember.user_id == User.id).where(
        User.id == user_id, OrgMember.org_id == ctx.org_id))
    if user is None:
        raise NotFound("user not found")
    return user


def change_role(ctx: ProjectContext, user_id: uuid.UUID, role: str) -> MemberRead:
    """Change a member's role within the caller's own rank; the last owner stays an owner."""
    member = _member(ctx, user_id)
    if outranks(member.role, ctx.role):
        raise Forbidden("you cannot change the role of someone ranked above you")
    check_can_grant(ctx, role)
    if member.role == "owner" and role != "owner" and _owner_count(ctx) <= 1:
        raise Conflict("a project keeps at least one owner", code="last_owner")
    old, member.role = member.role, role
    ctx.audit("member.role_changed", "user", user_id, old=old, new=role)
    ctx.session.flush()
    user = ctx.session.get(User, user_id)
    assert user is not None
    return MemberRead(user_id=user_id, email=user.email, name=user.name, role=role,
                      created_at=member.created_at)


def remove_member(ctx: ProjectContext, user_id: uuid.UUID) -> None:
    """Remove a member (or leave); owners are removed only by owners; the last owner stays."""
    member = _member(ctx, user_id)
    leaving = user_id == ctx.user_id
    if not leaving:
        ctx.require(Action.MEMBERS_MANAGE)
    if not leaving and outranks(member.role, ctx.role):
        raise Forbidden("you cannot remove someone ranked above you")
    if member.role == "owner" and _owner_count(ctx) <= 1:
        raise Conflict("the last owner cannot leave the project", code="last_owner")
    ctx.session.delete(member)
    ctx.audit("member.left" if leaving else "member.removed", "user", user_id, role=member.role)
    ctx.session.flush()


def invitation(ctx: ProjectContext, role: str) -> Invitation:
    """What an invitation mail says: the inviter by name, the project, the org, the role."""
    inviter = ctx.session.get(User, ctx.user_id) if ctx.user_id else None
    name = (inviter.name or inviter.email) if inviter else None
    return Invitation(inviter=name or ctx.identity.label, inviter_email=inviter.email if inviter else None,
                      project_name=ctx.project_name, project_id=ctx.project_id, org_id=ctx.org_id,
                      org_brand=brand_of(ctx.session, ctx.org_id).name, role=role)
