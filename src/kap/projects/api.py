"""Project and member routes."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Request, Response, status
from sqlalchemy import select

from kap.core.db import loop_reads
from kap.core.deps import (
    CurrentIdentity,
    ProjectContext,
    RuntimeDep,
    UserSession,
    request_address,
    require,
)
from kap.core.errors import Conflict, Forbidden, NotFound, ValidationFailed, raises
from kap.core.login import send_invitation
from kap.core.models import User
from kap.core.permissions import Action
from kap.core.routes import AnswerInThread, json_answer, read_on_loop
from kap.core.schemas import Ok
from kap.projects import service
from kap.projects.schemas import (
    MemberAdd,
    MemberList,
    MemberRead,
    MemberUpdate,
    ProjectCreate,
    ProjectList,
    ProjectRead,
    ProjectUpdate,
)

router = APIRouter(prefix="/api/projects", tags=["projects"], route_class=AnswerInThread)

# get_project answers from the reach's row: its transaction ends with the access check.
ProjectRead_ = Annotated[ProjectContext, require(Action.PROJECT_READ, reach_only=True)]
ProjectAdmin = Annotated[ProjectContext, require(Action.PROJECT_UPDATE)]
ProjectOwner = Annotated[ProjectContext, require(Action.PROJECT_ARCHIVE)]
MembersRead = Annotated[ProjectContext, require(Action.MEMBERS_READ)]
MembersManage = Annotated[ProjectContext, require(Action.MEMBERS_MANAGE)]


@router.post("", status_code=status.HTTP_201_CREATED)
@raises(Forbidden, NotFound, ValidationFailed)
def create_project(body: ProjectCreate, request: Request, identity: CurrentIdentity,
                   session: UserSession, runtime: RuntimeDep) -> ProjectRead:
    """Create a project in the caller's org, with the caller as owner."""
    return service.create_project(session, identity, body.name, body.org_id,
                                  ip=request_address(request, runtime),
                                  user_agent=request.headers.get("user-agent"))


async def _list_projects_on_loop(identity: CurrentIdentity, session: UserSession,
                                 include_archived: bool = False) -> Response:
    reads = loop_reads(session)
    assert reads is not None
    return json_answer({"ok": True, "projects": await service.listed_projects_on_loop(
        reads, identity, include_archived=include_archived)})


@router.get("", response_model=ProjectList)
@read_on_loop(postgres=_list_projects_on_loop)
def list_projects(identity: CurrentIdentity, session: UserSession, include_archived: bool = False) -> Response:
    """List the projects the caller can reach."""
    return json_answer({"ok": True,
                        "projects": service.listed_projects(session, identity, include_archived=include_archived)})


@router.get("/{project_id}")
async def get_project(ctx: ProjectRead_) -> ProjectRead:
    # async: the context already holds the project's row, so there is no I/O to wait for
    # (a sync handler would cost two worker-thread hops: the handler, then its answer's check).
    return service.get_project(ctx)


@router.patch("/{project_id}")
def update_project(body: ProjectUpdate, ctx: ProjectAdmin) -> ProjectRead:
    """Rename a project."""
    if body.name is None:
        return service.get_project(ctx)
    return service.rename_project(ctx, body.name)


@router.delete("/{project_id}")
def archive_project(ctx: ProjectOwner) -> ProjectRead:
    """Archive a project: it turns read-only (its data is kept) until it is unarchived."""
    return service.archive_project(ctx)


@router.post("/{project_id}/unarchive")
def unarchive_project(ctx: ProjectOwner) -> ProjectRead:
    """Unarchive a project: the one change an archived project takes."""
    return service.unarchive_project(ctx)


@router.get("/{project_id}/members")
def list_members(ctx: MembersRead) -> MemberList:
    return MemberList(members=service.list_members(ctx))


@router.post("/{project_id}/members", status_code=status.HTTP_201_CREATED)
@raises(Forbidden, NotFound, Conflict)
def add_member(body: MemberAdd, ctx: MembersManage, runtime: RuntimeDep) -> MemberRead:
    """Add an org user by id, or invite anyone by email (a sign-in link is mailed)."""
    if body.user_id is not None:
        return service.add_member(ctx, service.org_user(ctx, body.user_id), body.role, invited=False)
    assert body.email is not None
    email = body.email.lower()
    service.check_can_grant(ctx, body.role)  # before any user is created or anything is mailed
    with runtime.db.service_scope(ctx.session) as svc:
        user = svc.scalar(select(User).where(User.email == email))
        if user is not None:
            service.ensure_not_member(ctx, user.id)
        else:
            user = User(email=email)
            svc.add(user)
            svc.flush()
        send_invitation(svc, runtime.mailer, runtime.settings, user, service.invitation(ctx, body.role),
                        invited_by=ctx.user_id, mail_session=ctx.session)
        invited = User(id=user.id, email=user.email, name=user.name)
    return service.add_member(ctx, invited, body.role, invited=True)


@router.patch("/{project_id}/members/{user_id}")
@raises(Forbidden, Conflict)
def change_member_role(user_id: uuid.UUID, body: MemberUpdate, ctx: MembersManage) -> MemberRead:
    return service.change_role(ctx, user_id, body.role)


@router.delete("/{project_id}/members/{user_id}")
@raises(Forbidden, Conflict)
def remove_member(user_id: uuid.UUID, ctx: MembersRead) -> Ok:
    """Remove a member; any member may remove themselves (leave)."""
    service.remove_member(ctx, user_id)
    return Ok()
