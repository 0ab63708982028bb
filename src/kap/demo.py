"""Demo data and the brief's self-test lines, filled in with real ids."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from kap.core.db import Database
from kap.core.models import Org, OrgMember, Project, ProjectMember, User
from kap.core.permissions import ORG_ROLE_RANK, PROJECT_ROLE_RANK
from kap.core.settings import Settings

NS = uuid.UUID("6b1f4c1e-4f0a-4c7b-9d5e-2d3c4b5a6978")


def demo_id(name: str) -> uuid.UUID:
    return uuid.uuid5(NS, name)


@dataclass(frozen=True)
class DemoIds:
    org: uuid.UUID = demo_id("org")
    owner: uuid.UUID = demo_id("user:owner")
    pm: uuid.UUID = demo_id("user:pm")
    member: uuid.UUID = demo_id("user:member")
    other: uuid.UUID = demo_id("user:other")
    project_a: uuid.UUID = demo_id("project:a")
    project_b: uuid.UUID = demo_id("project:b")

    def describe(self) -> str:
        return "\n".join([
            "Kap demo data",
            f"  ORG        {self.org}  Demo Consultancy",
            f"  PROJ_A     {self.project_a}  Northwind Workday rollout",
            f"  PROJ_B     {self.project_b}  Contoso SAP migration",
            f"  USER       {self.owner}  owner@demo.kap (org owner, owner of both projects)",
            f"  USER_PM    {self.pm}  pm@demo.kap (pm on PROJ_A)",
            f"  USER_A     {self.member}  member@demo.kap (member on PROJ_A only)",
            f"  USER_B     {self.other}  other@demo.kap (member on PROJ_B only)",
        ])


DEMO_USERS = (("owner", "owner@demo.kap", "Olivia Owner"), ("pm", "pm@demo.kap", "Priya PM"),
              ("member", "member@demo.kap", "Mo Member"), ("other", "other@demo.kap", "Bea Other"))


def create_demo(settings: Settings) -> DemoIds:
    """Create the demo org, two projects and four users; running it again changes nothing."""
    ids = DemoIds()
    db = Database(settings)
    try:
        with db.service_transaction() as s:
            if s.get(Org, ids.org) is None:
                s.add(Org(id=ids.org, name="Demo Consultancy"))
            for key, email, name in DEMO_USERS:
                uid = getattr(ids, key)
                if s.get(User, uid) is None:
                    s.add(User(id=uid, email=email, name=name))
            s.flush()
            for key, role in (("owner", "owner"), ("pm", "member"), ("member", "member"), ("other", "member")):
                _ensure_org_member(s, ids.org, getattr(ids, key), role)
            for pid, name in ((ids.project_a, "Northwind Workday rollout"),
                              (ids.project_b, "Contoso SAP migration")):
                if s.get(Project, pid) is None:
                    s.add(Project(id=pid, org_id=ids.org, name=name, created_by=ids.owner))
            s.flush()
            for pid, uid, role in ((ids.project_a, ids.owner, "owner"), (ids.project_b, ids.owner, "owner"),
                                   (ids.project_a, ids.pm, "pm"), (ids.project_a, ids.member, "member"),
                                   (ids.project_b, ids.other, "member")):
                _ensure_project_member(s, ids.org, pid, uid, role)
    finally:
        db.dispose()
    return ids


def _ensure_org_member(s: Session, org: uuid.UUID, user: uuid.UUID, role: str) -> None:
    if s.scalar(select(OrgMember.id).where(OrgMember.org_id == org, OrgMember.user_id == user)) is None:
        s.add(OrgMember(org_id=org, user_id=user, role=role))


def _ensure_project_member(s: Session, org: uuid.UUID, project: uuid.UUID, user: uuid.UUID, role: str) -> None:
    row = s.scalar(select(ProjectMember).where(ProjectMember.project_id == project,
                                               ProjectMember.user_id == user))
    if row is None:
        s.add(ProjectMember(org_id=org, project_id=project, user_id=user, role=role))


def add_user(settings: Settings, *, email: str, org: str, project: uuid.UUID | None, role: str,
             org_role: str) -> uuid.UUID:
    """Create (or find) a user, put them in an org and optionally a project."""
    if role not in PROJECT_ROLE_RANK:
        raise ValueError(f"--role must be one of {', '.join(PROJECT_ROLE_RANK)}")
    if org_role not in ORG_ROLE_RANK:
        raise ValueError(f"--org-role must be one of {', '.join(ORG_ROLE_RANK)}")
    db = Database(settings)
    try:
        with db.service_transaction() as s:
            org_row = _find_org(s, org)
            user = s.scalar(select(User).where(User.email == email.lower()))
            if user is None:
                user = User(email=email.lower())
                s.add(user)
                s.flush()
            _ensure_org_member(s, org_row.id, user.id, org_role)
            if project is not None:
                proj = s.get(Project, project)
                if proj is None or proj.org_id != org_row.id:
                    raise ValueError("no such project in that org")
                _ensure_project_member(s, org_row.id, project, user.id, role)
            return user.id
    finally:
        db.dispose()


def _find_org(s: Session, org: str) -> Org:
    try:
        found = s.get(Org, uuid.UUID(org))
        if found is None:
            raise ValueError(f"no org with id {org}")
        return found
    except ValueError as exc:
        if "no org" in str(exc):
            raise
    row = s.scalar(select(Org).where(Org.name == org))
    if row is None:
        row = Org(name=org)
        s.add(row)
        s.flush()
    return row


def self_test_lines(ids: DemoIds, routes: set[str] | None = None) -> list[str]:
    """The brief's self-test, each line filled in with demo ids; only routes this build serves."""
    if routes is None:
        from kap.app import ROUTERS

        routes = {getattr(r, "path", "") for router in ROUTERS for r in router.routes}
    dev = f'-H "X-Dev-User:{ids.owner}" -H "X-Dev-Org:{ids.org}" -H "X-Dev-Role:owner"'
    steps = [
        ("/api/dev/seed-simple", "A) QA seed",
         f'curl -s -X POST "$APP/api/dev/seed-simple?project_id={ids.project_a}" \\\n  {dev}'),
        ("/api/dev/smoke-run", "B) Smoke run",
         f'curl -s -X POST "$APP/api/dev/smoke-run?project_id={ids.project_a}" \\\n'
         f'  -H "Content-Type: application/json" \\\n  {dev} \\\n  -d \'{{"email_to":"test@example.com"}}\''),
        ("/api/backups/store-and-reingest", "C) Store + re-ingest (KEY from GET /api/backups)",
         f'curl -s -X POST "$APP/api/backups/store-and-reingest?project_id={ids.project_a}'
         f'&backup_key=<KEY>&artifact_name=artifacts/<FILE>" \\\n  {dev}'),
        ("/api/digest/preview", "D) Digest preview",
         f'curl -s "$APP/api/digest/preview?project_id={ids.project_a}" \\\n'
         f'  -H "X-Dev-User:{ids.pm}" -H "X-Dev-Org:{ids.org}" -H "X-Dev-Role:pm"'),
        ("/api/sentinel/tenant-leak", "E) Tenant sentinel (should be isolated)",
         f'curl -s "$APP/api/sentinel/tenant-leak?project_id={ids.project_a}&target_project_id={ids.project_b}" '
         f'\\\n  -H "X-Dev-User:{ids.member}" -H "X-Dev-Org:{ids.org}" -H "X-Dev-Role:member"\n'
         '# -> {"leak": false, ...}'),
    ]
    out = []
    for path, title, line in steps:
        if path in routes:
            out += [f"# {title}", line, ""]
    return out
