"""Request dependencies: runtime, identity, database session and the tenant choke point.

Every project-scoped route asks for an action through `require(action)`; the
dependency turns `(identity, project_id)` into a `ProjectContext` or answers 404,
the same 404 for "no such project" and "not yours".
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from typing import Annotated, Any

import anyio
from fastapi import Depends, Request
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from kap.core.audit import record_audit
from kap.core.db import LoopReads, has_written
from kap.core.errors import (
    DbNotReady,
    Forbidden,
    NotFound,
    ProjectArchived,
    RateLimited,
    Unauthorized,
    ValidationFailed,
    raises,
)
from kap.core.jobs import waits_for_commit
from kap.core.models import OrgMember, Project
from kap.core.permissions import (
    ACTIONS,
    ORG_ADMIN_FLOOR,
    Action,
    changes_project,
    forbidden_message,
    is_org_admin,
    offered_while_archived,
    role_allows,
)
from kap.core.ratelimit import client_address
from kap.core.runtime import Runtime
from kap.core.scope import ProjectScope, Reach, reach, reach_on_loop, trusted_scope, visible_project_ids
from kap.core.security import CSRF_HEADER, SESSION_COOKIE, Credentials, Identity


@raises(DbNotReady)  # whatever reaches the runtime may find the database down
async def get_runtime(request: Request) -> Runtime:
    # async: FastAPI runs sync dependencies in a worker thread; this one needs none.
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


def request_address(request: Request, runtime: Runtime) -> str:
    """The caller's address, honouring X-Forwarded-For only from trusted proxies."""
    peer = request.client.host if request.client else None
    return client_address(peer, request.headers.get("x-forwarded-for"),
                          runtime.settings.kap_trusted_proxies)


def read_credentials(request: Request) -> Credentials:
    """Collect the credentials a request presents."""
    headers = request.headers
    bearer = None
    auth = headers.get("authorization")
    if auth:
        scheme, _, value = auth.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise Unauthorized("Authorization must be 'Bearer <token>'", code="invalid_token")
        bearer = value.strip()
    return Credentials(bearer=bearer, dev_user=headers.get("x-dev-user"),
                       dev_org=headers.get("x-dev-org"), dev_role=headers.get("x-dev-role"),
                       session=request.cookies.get(SESSION_COOKIE), csrf=headers.get(CSRF_HEADER),
                       method=request.method)


@raises(Unauthorized, RateLimited, ValidationFailed)  # bad credentials, the limit, X-Dev-Role
async def optional_identity(request: Request, runtime: RuntimeDep) -> Identity | None:
    """The caller's identity if one was presented; bad credentials are a 401.

    On the event loop when no I/O is needed (a user already seen, an in-memory rate limit),
    else in one worker thread: the look-up and the rate-limit hit together.
    """
    if "identity" in request.scope.get("state", {}):  # already resolved (the edge for uploads, `user_session`)
        known: Identity | None = request.state.identity
        return known
    credentials = read_credentials(request)
    if runtime.db.schema_ready and runtime.limiter.backend == "memory" \
            and runtime.identity.resolves_in_memory(credentials):
        return _identify(request, runtime, credentials)
    return await run_in_threadpool(_identify, request, runtime, credentials)


def _identify(request: Request, runtime: Runtime, credentials: Credentials) -> Identity | None:
    address = request_address(request, runtime)
    runtime.ensure_schema()  # identities are looked up in the database
    try:
        identity = runtime.identity.resolve(credentials)
    except Unauthorized:
        runtime.limiter.hit(f"ip:{address}")
        raise
    key = f"user:{identity.user_id}" if identity and identity.user_id else f"ip:{address}"
    if identity is None or not identity.is_internal:
        runtime.limiter.hit(key)
    request.state.identity = identity
    return identity


@raises(Unauthorized)
async def require_identity(identity: Annotated[Identity | None, Depends(optional_identity)]) -> Identity:
    """A signed-in user; the internal service bearer is refused here."""
    return _signed_in(identity)


def _signed_in(identity: Identity | None) -> Identity:
    if identity is None:
        raise Unauthorized()
    if identity.is_internal:
        raise Unauthorized("the internal bearer is accepted on internal routes only",
                           code="internal_not_allowed")
    return identity


@raises(RateLimited)
def limit_anonymous(request: Request, runtime: RuntimeDep) -> None:
    """Rate-limit a public route by client address."""
    runtime.limiter.hit(f"ip:{request_address(request, runtime)}")


CurrentIdentity = Annotated[Identity, Depends(require_identity)]


def _finish(session: Session, ok: bool) -> None:
    try:
        if ok:
            session.commit()
        else:
            session.rollback()
    finally:
        session.close()


@asynccontextmanager
async def _request_transaction(runtime: Runtime, session: Session) -> AsyncIterator[Session]:
    """Yield the session; commit when the handler returns, roll back on any error.

    Async so that opening costs no thread hop (a session does no I/O until first used);
    the commit or rollback, which talks to the database, runs in one worker thread, except
    for a SQLite transaction that only read (its commit touches neither file nor lock).
    """
    try:
        if not runtime.db.schema_ready:
            await run_in_threadpool(runtime.ensure_schema)
        yield session
    except BaseException:
        with anyio.CancelScope(shield=True):  # a dropped client must still release the connection
            await run_in_threadpool(_finish, session, False)
        raise
    if not session.in_transaction():  # never begun, or ended by a reach-only route: no I/O left
        session.close()
        return
    if not runtime.db.is_postgres and not has_written(session) and not waits_for_commit(session):
        session.close()  # SQLite, nothing written or enqueued: nothing to commit, no lock held, no I/O
        return
    with anyio.CancelScope(shield=True):
        await run_in_threadpool(_finish, session, True)


# What `get_runtime`, `optional_identity` and `require_identity` declare: it does their work.
@raises(DbNotReady, Unauthorized, RateLimited, ValidationFailed)
async def user_session(request: Request) -> AsyncIterator[Session]:
    """The request's transaction as the signed-in caller; committed when the handler returns.

    It resolves the runtime and the caller itself, as `CurrentIdentity` does (once per request:
    whichever comes first leaves the caller in `request.state`), so FastAPI solves one
    dependency here instead of four on every user request.
    """
    runtime: Runtime = request.app.state.runtime
    identity = _signed_in(await optional_identity(request, runtime))
    async with _request_transaction(runtime, runtime.db.app_session(identity.user_id)) as session:
        yield session


async def public_session(runtime: RuntimeDep) -> AsyncIterator[Session]:
    """A transaction for a public route: on PostgreSQL it sees no tenant rows."""
    async with _request_transaction(runtime, runtime.db.app_session(None)) as session:
        yield session


async def service_session(runtime: RuntimeDep) -> AsyncIterator[Session]:
    """A trusted transaction for routes that authorise by other means (signed tokens)."""
    async with _request_transaction(runtime, runtime.db.service_session()) as session:
        yield session


UserSession = Annotated[Session, Depends(user_session, scope="function")]
PublicSession = Annotated[Session, Depends(public_session, scope="function")]
ServiceSession = Annotated[Session, Depends(service_session, scope="function")]


class UndeclaredAction(RuntimeError):
    """A service asked for a permission its route did not declare (a programming error)."""


@dataclass(frozen=True)
class ProjectContext:
    """A caller's reach into one project: a `ProjectScope` (which only `kap.core.scope`
    mints), the role it acts with, and the request's session.

    `archived` says the project is read-only; on a page of it (`read_only`), `allows` answers
    False for every action that changes things, so no page offers a control the API refuses.
    """

    identity: Identity
    scope: ProjectScope
    project_name: str
    role: str
    session: Session
    ip: str | None = None
    user_agent: str | None = None
    # The actions the route declared (`require(action, also=...)`); None outside a route's
    # declaration (pages, jobs), where `may` asks the table without the check.
    declared: frozenset[Action] | None = None
    # The project as the context was resolved: the reach query's columns (`PROJECT_LIST_COLUMNS`)
    # or a service context's `Project`; a handler that changes the project loads its row itself.
    project_row: Any = field(default=None, repr=False, compare=False)
    archived: bool = False
    read_only: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.scope, ProjectScope):
            raise TypeError("a ProjectContext needs a ProjectScope")

    @property
    def org_id(self) -> uuid.UUID:
        return self.scope.org_id

    @property
    def project_id(self) -> uuid.UUID:
        return self.scope.project_id

    @property
    def user_id(self) -> uuid.UUID | None:
        return self.identity.user_id

    def allows(self, action: Action) -> bool:
        """Whether the caller's role may perform an action (looked up in the permissions table)."""
        return role_allows(self.role, action) and (not self.read_only or offered_while_archived(action))

    def may(self, action: Action) -> bool:
        """A second permission a service asks for inside a route: it must be declared on the
        route (`require(action, also=(...))`), so the access matrix sees it."""
        if self.declared is not None and action not in self.declared:
            raise UndeclaredAction(f"the route asks for '{action}' without declaring it: "
                                   f"require(..., also=(Action.{action.name},))")
        return self.allows(action)

    def require(self, action: Action) -> None:
        """Raise the one 403 the choke point gives (API and pages alike), in plain words."""
        if not role_allows(self.role, action):
            raise Forbidden(forbidden_message(action, self.role), code="forbidden",
                            details={"action": action, "needs_role": ACTIONS[action], "role": self.role})

    def audit(self, action: str, target_type: str, target_id: object, **details: Any) -> None:
        """Record an event by the caller in this project, in the request's transaction."""
        record_audit(self.session, org_id=self.org_id, project_id=self.project_id, actor_id=self.user_id,
                     actor_label=self.identity.label, action=action, target_type=target_type,
                     target_id=str(target_id), details=details, ip=self.ip, user_agent=self.user_agent)


def resolve_project(session: Session, identity: Identity, project_id: uuid.UUID, *,
                    ip: str | None = None, user_agent: str | None = None, alone: bool = False) -> ProjectContext:
    """Turn (identity, project id) into a ProjectContext, or raise the one 404.

    `alone`: the caller ends the session's transaction right after (see `reach`)."""
    if identity.user_id is None:
        raise NotFound("project not found")
    found = reach(session, identity.user_id, project_id, identity.dev_role, alone=alone)
    return _reached(found, session, identity, ip=ip, user_agent=user_agent)


async def resolve_project_on_loop(reads: LoopReads, session: Session, identity: Identity, project_id: uuid.UUID, *,
                                  ip: str | None = None, user_agent: str | None = None) -> ProjectContext:
    """`resolve_project` for a route whose whole work is the access check, as one read on the event
    loop (PostgreSQL); `session` stays unused (it begins nothing)."""
    if identity.user_id is None:
        raise NotFound("project not found")
    found = await reach_on_loop(reads, identity.user_id, project_id, identity.dev_role)
    return _reached(found, session, identity, ip=ip, user_agent=user_agent)


def _reached(found: Reach | None, session: Session, identity: Identity, *, ip: str | None,
             user_agent: str | None) -> ProjectContext:
    if found is None:
        raise NotFound("project not found")
    return ProjectContext(identity=identity, scope=found.scope, project_name=found.project_name,
                          role=found.role, session=session, ip=ip, user_agent=user_agent,
                          project_row=found.project, archived=found.archived)


def service_context(session: Session, identity: Identity, project_id: uuid.UUID, *, purpose: str,
                    role: str, ip: str | None = None, user_agent: str | None = None) -> ProjectContext:
    """A ProjectContext for trusted work on a project it names (a service scope), or the one 404.

    `role` is what the work may do, from the permissions table (the lowest role of the
    action it performs), never a blanket owner.
    """
    project = session.get(Project, project_id)
    if project is None:
        raise NotFound("project not found")
    scope = trusted_scope(session, project.id, purpose=purpose, org_id=project.org_id)
    assert scope is not None
    return ProjectContext(identity=identity, scope=scope, project_name=project.name, role=role,
                          session=session, ip=ip, user_agent=user_agent, project_row=project,
                          archived=project.archived_at is not None)


@raises(NotFound, Forbidden, ProjectArchived)  # the one 404 for "not yours", a role too low, an archived project
class ActionDependency:
    """`Depends(require(Action.DOCUMENTS_WRITE))`: resolves the context and checks the action, and
    refuses a change to an archived project (409 `project_archived`, see `changes_project`)."""

    def __init__(self, action: Action, also: tuple[Action, ...] = (), *, reach_only: bool = False) -> None:
        for name in (action, *also):
            if name not in ACTIONS:
                raise KeyError(f"unknown action {name!r}")
        self.action = action
        self.also = also
        self.reach_only = reach_only

    async def __call__(self, request: Request, project_id: uuid.UUID, session: UserSession) -> ProjectContext:
        runtime: Runtime = request.app.state.runtime
        reads = runtime.db.loop_reads
        if reads is None:
            # SQLite: the check is one indexed read of a local file, which in WAL mode never waits
            # for a writer; a worker thread would cost more than the read itself.
            return self.resolve(request, runtime, project_id, session)
        if not self.reach_only:
            return await run_in_threadpool(self.resolve, request, runtime, project_id, session)
        # PostgreSQL, a route that answers from the reach alone: its one read waits on the loop.
        ctx = await resolve_project_on_loop(reads, session, request.state.identity, project_id,
                                            ip=request_address(request, runtime),
                                            user_agent=request.headers.get("user-agent"))
        return self._checked(request, ctx)

    def resolve(self, request: Request, runtime: Runtime, project_id: uuid.UUID, session: Session) -> ProjectContext:
        """The route's checked context (in a worker thread on PostgreSQL, inline on SQLite)."""
        # The caller and the runtime as `UserSession` resolved them (it refused anonymous callers and
        # the internal bearer): asking for them again would cost FastAPI a walk of their dependencies.
        identity: Identity = request.state.identity
        ctx = resolve_project(session, identity, project_id, ip=request_address(request, runtime),
                              user_agent=request.headers.get("user-agent"), alone=self.reach_only)
        checked = self._checked(request, ctx)
        if self.reach_only:
            session.commit()  # in this thread: the request's transaction needs no second hop to end
        return checked

    def _checked(self, request: Request, ctx: ProjectContext) -> ProjectContext:
        """The context once authorised, declaring the route's actions."""
        self.authorise(request, ctx)
        return replace(ctx, declared=frozenset((self.action, *self.also)))

    def admit(self, request: Request, identity: Identity, project_id: uuid.UUID) -> None:
        """The route's access check alone, in a session of its own, before the request's body is read:
        an upload the caller may not make is refused (404, 403, 409) before its first byte."""
        runtime: Runtime = request.app.state.runtime
        runtime.ensure_schema()
        session = runtime.db.service_session() if identity.is_internal else runtime.db.app_session(identity.user_id)
        try:
            self._context(request, runtime, session, identity, project_id)
        finally:
            session.rollback()
            session.close()

    def _context(self, request: Request, runtime: Runtime, session: Session, identity: Identity,
                 project_id: uuid.UUID) -> ProjectContext:
        """The caller's context in the project, checked, as the route's own dependency builds it."""
        ctx = resolve_project(session, _signed_in(identity), project_id, alone=True)  # then rolled back
        self.authorise(request, ctx)
        return ctx

    def authorise(self, request: Request, ctx: ProjectContext) -> None:
        """The checks every route's context passes: the role (403), then an archived project's
        read-only rule (409); subclasses that build the context another way call it too."""
        ctx.require(self.action)
        if ctx.archived and changes_project(request.method, self.action):
            raise ProjectArchived()
        request.state.project_id = ctx.project_id


_require_cache: dict[tuple[Action, tuple[Action, ...], bool], ActionDependency] = {}


def require(action: Action, *, also: tuple[Action, ...] = (), reach_only: bool = False) -> Any:
    """A dependency that yields a ProjectContext allowed to perform `action`.

    `also` names the second permissions the route's service asks for with `ctx.may`
    (a wider view for higher roles), so they are declared where the matrix sees them.
    `reach_only`: the handler answers from the reach's row alone, so the transaction ends
    right after the access check, in its thread (a handler that still used the session would
    get a second transaction, committed as usual).
    """
    key = (action, also, reach_only)
    if key not in _require_cache:
        _require_cache[key] = ActionDependency(action, also, reach_only=reach_only)
    return Depends(_require_cache[key])


@raises(Unauthorized)
async def internal_only(identity: Annotated[Identity | None, Depends(optional_identity)]) -> Identity:
    """Accept only the INTERNAL_API_BEARER service identity."""
    if identity is None or not identity.is_internal:
        raise Unauthorized("internal route", code="internal_only")
    return identity


InternalIdentity = Annotated[Identity, Depends(internal_only)]
Dependency = Callable[..., Any]


@dataclass(frozen=True)
class OrgContext:
    """A caller's reach into one org as its owner or admin."""

    identity: Identity
    org_id: uuid.UUID
    role: str
    session: Session


def resolve_org_admin(session: Session, identity: Identity, org_id: uuid.UUID | None) -> OrgContext:
    """The org the caller administers (the one asked for, or their only one), else 404/403."""
    rows = session.execute(select(OrgMember.org_id, OrgMember.role)
                           .where(OrgMember.user_id == identity.user_id)).all()
    roles = {org: role for org, role in rows}
    if org_id is None:
        admin_orgs = [org for org, role in roles.items() if is_org_admin(role)]
        if len(admin_orgs) != 1:
            raise Forbidden("give org_id of an org you administer", code="org_required")
        org_id = admin_orgs[0]
    if org_id not in roles:
        raise NotFound("org not found")
    if not is_org_admin(roles[org_id]):
        raise Forbidden("Only the org's owners and admins can do this. You are a member of the org; "
                        "ask an org owner or admin if you need it.", code="forbidden",
                        details={"needs_org_role": ORG_ADMIN_FLOOR, "org_role": roles[org_id]})
    return OrgContext(identity=identity, org_id=org_id, role=roles[org_id], session=session)


def visible_projects(identity: Identity) -> Any:
    """A subquery of the project ids a caller can reach: the app-level tenant wall."""
    return visible_project_ids(identity.user_id)
