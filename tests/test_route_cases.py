"""Every route has a case: a valid request, the 2xx it answers, and the effect a person sees.

A case checks what the route did — the row exists, changed or is gone, the page shows
the object — not only that the status was not an error. A route added without a case
fails `test_every_route_has_a_case`.
"""

from __future__ import annotations

import io
import re
import uuid
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from kap.ask.models import AskQuestion
from kap.backups.models import BackupRun, RestoreActivity
from kap.comms.models import CommsSettings, Subscription, WebhookToken
from kap.core.db import Database, utcnow
from kap.core.login import issue_login_token
from kap.core.models import AuditEvent, EmailLog, LoginToken, Org, Project, ProjectMember, UserSession
from kap.core.permissions import ACTIONS, changes_project
from kap.core.security import CSRF_COOKIE, CSRF_HEADER
from kap.documents.models import Artifact
from kap.raid.models import RaidComment, RaidItem
from kap.stages.models import SignoffRequest, Stage, StageArtifact, StageSettings, StageSigner
from kap.stages.previews import encode_png
from tests.comms.test_mailgun import SIGNING_KEY, signed
from tests.conftest import FIXTURES, Factory, World
from tests.tenant_rows import seed_every_table
from tests.test_access_matrix import CASES as ROUTES
from tests.test_access_matrix import RouteCase, _call
from tests.test_web_shell import signed_in


@dataclass
class Env:
    """One test's world: project A seeded with a row of every kind, and ways to call it."""

    app: Any
    client: TestClient
    world: World
    db: Database
    factory: Factory
    make_client: Callable[..., TestClient]
    ids: dict[str, uuid.UUID]
    browsers: dict[str, TestClient] = field(default_factory=dict)

    @property
    def a(self) -> str:
        return str(self.world.project_a)

    def api(self, method: str, path: str, who: str = "owner", *, query: dict[str, Any] | None = None,
            **kwargs: Any) -> Any:
        """Call an API route in project A as a named user (dev headers)."""
        params = {"project_id": self.a, **(query or {})}
        return self.client.request(method, path.replace("{a}", self.a), params=params,
                                   headers=self.world.h(who), **kwargs)

    def page(self, path: str, who: str = "owner", method: str = "GET", **kwargs: Any) -> Any:
        """Open a page as a signed-in user (session cookie)."""
        if who not in self.browsers:
            self.browsers[who] = signed_in(self.app, self.world.users[who])
        return self.browsers[who].request(method, path.replace("{a}", self.a), **kwargs)

    def count(self, model: Any, *where: Any) -> int:
        with self.db.service_session() as s:
            return int(s.scalar(select(func.count()).select_from(model).where(*where)) or 0)

    def get(self, model: Any, row_id: Any) -> Any:
        with self.db.service_session() as s:
            return s.get(model, row_id)

    def upload(self, name: str = "Cutover plan.txt", body: bytes = b"Cutover weekend is 14 March.") -> str:
        response = self.api("POST", "/api/ingest-sync", "lead", files={"file": (name, body, "text/plain")})
        assert response.status_code == 200, response.text
        return str(response.json()["document"]["id"])

    def signoff(self, stage: str | None = None) -> dict[str, Any]:
        """Send a sign-off request for a stage of A (the seeded one) and return the API answer."""
        stage = stage or str(self.ids["stages"])
        response = self.api("POST", f"/api/stages/{stage}/signoff-requests", "pm",
                            json={"email_to": "cfo@client.example", "name": "Dana CFO"})
        assert response.status_code == 201, response.text
        return dict(response.json())

    def backup(self) -> str:
        response = self.api("POST", "/api/backups/run", "admin")
        assert response.status_code == 200, response.text
        with self.db.service_session() as s:
            key = s.scalar(select(BackupRun.key).where(BackupRun.project_id == self.world.project_a,
                                                       BackupRun.status == "done"))
        assert key
        return str(key)


Case = Callable[[Env], None]
CASES: dict[str, Case] = {}


def case(*route_ids: str) -> Callable[[Case], Case]:
    def register(fn: Case) -> Case:
        for route_id in route_ids:
            assert route_id not in CASES, route_id
            CASES[route_id] = fn
        return fn
    return register


def ok(response: Any, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response


def token_of(link: str) -> str:
    return link.rstrip("/").rsplit("/", 1)[-1]


# --- health, identity, sign-in ------------------------------------------------------------------

@case("GET /healthz", "GET /readyz")
def _health(env: Env) -> None:
    assert ok(env.client.get("/healthz")).json()["ok"] is True
    assert ok(env.client.get("/readyz")).json()["ok"] is True


@case("GET /api/me")
def _me(env: Env) -> None:
    body = ok(env.api("GET", "/api/me", "pm")).json()
    assert body["user"]["id"] == str(env.world.users["pm"])
    assert [(p["name"], p["role"]) for p in body["projects"]] == [("A", "pm")]


def _user_with_email(env: Env) -> tuple[uuid.UUID, str]:
    email = f"{uuid.uuid4().hex[:10]}@example.com"
    return env.factory.user(env.world.org1, email=email), email


@case("POST /api/auth/magic-link", "POST /login", "GET /login")
def _magic_link_request(env: Env) -> None:
    uid, email = _user_with_email(env)
    ok(env.client.post("/api/auth/magic-link", json={"email": email}))
    assert env.count(LoginToken, LoginToken.user_id == uid) == 1
    assert "Sign in" in ok(env.client.get("/login")).text
    ok(env.client.post("/login", data={"email": email, "next": "/"}, follow_redirects=False), 303)
    assert env.count(LoginToken, LoginToken.user_id == uid) == 2


def _login_token(env: Env, uid: uuid.UUID) -> str:
    with env.db.service_transaction() as s:
        return issue_login_token(s, uid)


@case("POST /api/auth/magic-link/consume", "POST /api/auth/logout")
def _consume_and_logout(env: Env) -> None:
    uid, _ = _user_with_email(env)
    browser = TestClient(env.app, raise_server_exceptions=False)
    ok(browser.post("/api/auth/magic-link/consume", json={"token": _login_token(env, uid)}))
    assert env.count(UserSession, UserSession.user_id == uid) == 1
    csrf = browser.cookies.get(CSRF_COOKIE) or ""
    ok(browser.post("/api/auth/logout", headers={CSRF_HEADER: csrf}))
    assert env.count(UserSession, UserSession.user_id == uid) == 0


@case("GET /auth/magic/{token}", "POST /auth/magic/{token}")
def _magic_page(env: Env) -> None:
    uid, _ = _user_with_email(env)
    token = _login_token(env, uid)
    browser = TestClient(env.app, raise_server_exceptions=False)
    ok(browser.get(f"/auth/magic/{token}"))
    assert env.count(LoginToken, LoginToken.user_id == uid, LoginToken.used_at.is_(None)) == 1  # a GET uses nothing
    ok(browser.post(f"/auth/magic/{token}", follow_redirects=False), 303)
    assert env.count(LoginToken, LoginToken.user_id == uid, LoginToken.used_at.is_(None)) == 0
    assert env.count(UserSession, UserSession.user_id == uid) == 1


@case("POST /login/dev", "POST /logout")
def _dev_login_and_logout(env: Env) -> None:
    uid = env.world.users["member"]
    browser = TestClient(env.app, raise_server_exceptions=False)
    ok(browser.post("/login/dev", data={"user_id": str(uid)}, follow_redirects=False), 303)
    assert env.count(UserSession, UserSession.user_id == uid) == 1
    ok(browser.post("/logout", data={"csrf": browser.cookies.get(CSRF_COOKIE) or ""}, follow_redirects=False), 303)
    assert env.count(UserSession, UserSession.user_id == uid) == 0


# --- projects and members ---------------------------------------------------------------------

@case("POST /api/projects")
def _create_project(env: Env) -> None:
    body = ok(env.client.post("/api/projects", json={"name": "Payroll roll-out", "org_id": str(env.world.org1)},
                              headers=env.world.h("org_admin")), 201).json()
    assert env.count(ProjectMember, ProjectMember.project_id == uuid.UUID(body["id"]),
                     ProjectMember.user_id == env.world.users["org_admin"], ProjectMember.role == "owner") == 1


# --- org settings -----------------------------------------------------------------------------

@case("GET /api/orgs/{org_id}", "PATCH /api/orgs/{org_id}")
def _org_settings(env: Env) -> None:
    org = f"/api/orgs/{env.world.org1}"
    ok(env.client.patch(org, json={"project_creators": "members"}, headers=env.world.h("org_admin")))
    assert env.get(Org, env.world.org1).project_creators == "members"
    read = ok(env.client.get(org, headers=env.world.h("member"))).json()
    assert read["project_creators"] == "members"
    assert read["can_create_projects"] is True


@case("GET /api/projects", "GET /api/projects/{project_id}")
def _read_projects(env: Env) -> None:
    listed = ok(env.client.get("/api/projects", headers=env.world.h("member"))).json()
    assert [p["name"] for p in listed["projects"]] == ["A"]
    assert ok(env.api("GET", "/api/projects/{a}", "member")).json()["name"] == "A"


@case("PATCH /api/projects/{project_id}")
def _rename(env: Env) -> None:
    ok(env.api("PATCH", "/api/projects/{a}", "admin", json={"name": "A renamed"}))
    assert env.get(Project, env.world.project_a).name == "A renamed"


@case("DELETE /api/projects/{project_id}", "POST /api/projects/{project_id}/unarchive")
def _archive(env: Env) -> None:
    ok(env.api("DELETE", "/api/projects/{a}", "owner"))
    assert env.get(Project, env.world.project_a).archived_at is not None
    ok(env.api("POST", "/api/projects/{a}/unarchive", "owner"))
    assert env.get(Project, env.world.project_a).archived_at is None


@case("GET /api/projects/{project_id}/members")
def _members(env: Env) -> None:
    members = ok(env.api("GET", "/api/projects/{a}/members", "member")).json()["members"]
    assert {m["user_id"] for m in members} >= {str(env.world.users[r]) for r in ("owner", "pm", "member")}


@case("POST /api/projects/{project_id}/members")
def _add_member(env: Env) -> None:
    uid = env.factory.user(env.world.org1)
    ok(env.api("POST", "/api/projects/{a}/members", "admin", json={"user_id": str(uid), "role": "lead"}), 201)
    assert env.count(ProjectMember, ProjectMember.project_id == env.world.project_a, ProjectMember.user_id == uid,
                     ProjectMember.role == "lead") == 1


@case("PATCH /api/projects/{project_id}/members/{user_id}")
def _change_role(env: Env) -> None:
    uid = env.world.users["member"]
    ok(env.api("PATCH", f"/api/projects/{{a}}/members/{uid}", "admin", json={"role": "lead"}))
    assert env.count(ProjectMember, ProjectMember.user_id == uid, ProjectMember.role == "lead") == 1


@case("DELETE /api/projects/{project_id}/members/{user_id}")
def _remove_member(env: Env) -> None:
    uid = env.world.users["member"]
    ok(env.api("DELETE", f"/api/projects/{{a}}/members/{uid}", "admin"))
    assert env.count(ProjectMember, ProjectMember.project_id == env.world.project_a,
                     ProjectMember.user_id == uid) == 0


@case("GET /api/orgs/{org_id}/branding", "PUT /api/orgs/{org_id}/branding")
def _branding(env: Env) -> None:
    url = f"/api/orgs/{env.world.org1}/branding"
    ok(env.client.put(url, json={"display_name": "Brightline"}, headers=env.world.h("org_admin")))
    with env.db.service_session() as s:
        assert s.get(Org, env.world.org1).display_name == "Brightline"  # type: ignore[union-attr]
    assert ok(env.client.get(url, headers=env.world.h("member"))).json()["shown_as"] == "Brightline"


@case("PUT /api/orgs/{org_id}/logo", "DELETE /api/orgs/{org_id}/logo")
def _logo(env: Env) -> None:
    url = f"/api/orgs/{env.world.org1}/logo"
    png = encode_png(bytes([0, 0, 0] * 4), 2, 2, 6, 3)
    ok(env.client.put(url, files={"file": ("logo.png", png, "image/png")}, headers=env.world.h("org_owner")))
    with env.db.service_session() as s:
        assert s.get(Org, env.world.org1).logo_type == "image/png"  # type: ignore[union-attr]
    ok(env.client.delete(url, headers=env.world.h("org_owner")))
    with env.db.service_session() as s:
        assert s.get(Org, env.world.org1).logo_type is None  # type: ignore[union-attr]


# --- audit, telemetry, sentinel ---------------------------------------------------------------

@case("GET /api/audit", "GET /api/orgs/{org_id}/audit")
def _audit(env: Env) -> None:
    events = ok(env.api("GET", "/api/audit", "admin")).json()["events"]
    assert [e["details"]["title"] for e in events] == ["a Discovery"]
    org = ok(env.client.get(f"/api/orgs/{env.world.org1}/audit", headers=env.world.h("org_admin"))).json()
    assert "a Discovery" in str(org["events"])


@case("GET /api/telemetry")
def _telemetry(env: Env) -> None:
    body = ok(env.client.get("/api/telemetry", headers=env.world.h("org_owner"),
                             params={"org_id": str(env.world.org1)})).json()
    assert [e["path"] for e in body["events"]] == ["/a"]


@case("GET /api/sentinel/tenant-leak")
def _sentinel(env: Env) -> None:
    body = ok(env.api("GET", "/api/sentinel/tenant-leak", "member",
                      query={"target_project_id": str(env.world.project_c)})).json()
    assert body["leak"] is False
    assert len(body["checks"]) > 10


# --- QA tools -----------------------------------------------------------------------------------

@case("POST /api/dev/seed-simple")
def _seed_simple(env: Env) -> None:
    before = env.count(Artifact, Artifact.project_id == env.world.project_a)
    ok(env.api("POST", "/api/dev/seed-simple", "admin"))
    assert env.count(Artifact, Artifact.project_id == env.world.project_a) > before


@case("POST /api/dev/smoke-run")
def _smoke(env: Env) -> None:
    body = ok(env.api("POST", "/api/dev/smoke-run", "admin", json={"email_to": "qa@example.com"})).json()
    assert body["ok"] is True
    assert "token_link" in str(body)
    assert env.count(SignoffRequest, SignoffRequest.project_id == env.world.project_a,
                     SignoffRequest.recipient_email == "qa@example.com") == 1


# --- documents ----------------------------------------------------------------------------------

@case("POST /api/ingest-sync")
def _ingest_sync(env: Env) -> None:
    doc = env.upload()
    row = env.get(Artifact, uuid.UUID(doc))
    assert row.status == "ready"
    assert row.chunk_count >= 1


@case("POST /api/ingest")
def _ingest(env: Env) -> None:
    body = ok(env.api("POST", "/api/ingest", "lead", files={"file": ("Notes.txt", b"Go-live Monday.", "text/plain")}),
              202).json()
    assert env.get(Artifact, uuid.UUID(body["document"]["id"])) is not None


@case("POST /api/reingest-stored")
def _reingest(env: Env) -> None:
    doc = env.upload()
    ok(env.api("POST", "/api/reingest-stored", "lead", query={"artifact_id": doc}))
    assert env.get(Artifact, uuid.UUID(doc)).status == "ready"
    assert env.count(AuditEvent, AuditEvent.target_id == doc, AuditEvent.action.like("document.re%")) >= 1


@case("GET /api/documents", "GET /api/documents/{artifact_id}")
def _documents(env: Env) -> None:
    doc = env.upload()
    names = [d["name"] for d in ok(env.api("GET", "/api/documents", "member")).json()["documents"]]
    assert "Cutover plan.txt" in names
    assert "a payroll secrets.pdf" in names
    detail = ok(env.api("GET", f"/api/documents/{doc}", "member")).json()
    assert "Cutover weekend" in str(detail["pages"])


@case("GET /api/documents/{artifact_id}/download")
def _download(env: Env) -> None:
    doc = env.upload(body=b"Exact bytes.")
    assert ok(env.api("GET", f"/api/documents/{doc}/download", "member")).content == b"Exact bytes."


@case("DELETE /api/documents/{artifact_id}")
def _delete_document(env: Env) -> None:
    doc = env.upload()
    ok(env.api("DELETE", f"/api/documents/{doc}", "lead"))
    assert env.get(Artifact, uuid.UUID(doc)) is None


@case("GET /api/ocr/queue", "POST /api/ocr/resolve")
def _ocr(env: Env) -> None:
    lane = [d["id"] for d in ok(env.api("GET", "/api/ocr/queue", "member")).json()["documents"]]
    assert lane
    assert lane[0] != str(env.ids["artifacts"])
    ok(env.api("POST", "/api/ocr/resolve", "lead", query={"artifact_id": lane[0]},
               json={"mode": "text", "text": "Pasted contract text"}))
    assert env.get(Artifact, uuid.UUID(lane[0])).status == "ready"


@case("GET /api/search")
def _search(env: Env) -> None:
    hits = ok(env.api("GET", "/api/search", "member", query={"q": "zzasecret"})).json()["hits"]
    assert [h["artifact_id"] for h in hits] == [str(env.ids["artifacts"])]


# --- stages and sign-off ------------------------------------------------------------------------

@case("GET /api/stages", "GET /api/stages/{stage_id}")
def _stages(env: Env) -> None:
    stages = ok(env.api("GET", "/api/stages", "member")).json()["stages"]
    assert [s["title"] for s in stages] == ["a Discovery"]
    assert ok(env.api("GET", f"/api/stages/{env.ids['stages']}", "member")).json()["title"] == "a Discovery"


@case("POST /api/stages")
def _create_stage(env: Env) -> None:
    body = ok(env.api("POST", "/api/stages", "pm", json={"title": "Design"}), 201).json()
    assert env.get(Stage, uuid.UUID(body["id"])).title == "Design"


@case("POST /api/stages/apply-template")
def _template(env: Env) -> None:
    before = env.count(Stage, Stage.project_id == env.world.project_a)
    ok(env.api("POST", "/api/stages/apply-template", "pm"))
    assert env.count(Stage, Stage.project_id == env.world.project_a) > before


@case("PATCH /api/stages/{stage_id}")
def _update_stage(env: Env) -> None:
    ok(env.api("PATCH", f"/api/stages/{env.ids['stages']}", "pm", json={"title": "Discovery, revised"}))
    assert env.get(Stage, env.ids["stages"]).title == "Discovery, revised"


@case("DELETE /api/stages/{stage_id}")
def _delete_stage(env: Env) -> None:
    stage = ok(env.api("POST", "/api/stages", "pm", json={"title": "Throwaway"}), 201).json()["id"]
    ok(env.api("DELETE", f"/api/stages/{stage}", "pm"))
    assert env.get(Stage, uuid.UUID(stage)).deleted_at is not None


def _fresh_stage(env: Env) -> str:
    return str(ok(env.api("POST", "/api/stages", "pm", json={"title": "Build"}), 201).json()["id"])


@case("POST /api/stages/{stage_id}/signoff-requests", "GET /api/stages/{stage_id}/signoff-requests")
def _signoff_request(env: Env) -> None:
    stage = _fresh_stage(env)
    sent = env.signoff(stage)
    assert env.get(SignoffRequest, uuid.UUID(sent["request_id"])).status == "pending"
    listed = ok(env.api("GET", f"/api/stages/{stage}/signoff-requests", "member")).json()["requests"]
    assert [r["id"] for r in listed] == [sent["request_id"]]


@case("POST /api/stages/{stage_id}/signoff-requests/{request_id}/revoke")
def _revoke(env: Env) -> None:
    stage = _fresh_stage(env)
    sent = env.signoff(stage)
    ok(env.api("POST", f"/api/stages/{stage}/signoff-requests/{sent['request_id']}/revoke", "pm"))
    assert env.get(SignoffRequest, uuid.UUID(sent["request_id"])).status == "revoked"


@case("POST /api/stages/{stage_id}/signoff-requests/{request_id}/resend")
def _resend(env: Env) -> None:
    stage = _fresh_stage(env)
    sent = env.signoff(stage)
    again = ok(env.api("POST", f"/api/stages/{stage}/signoff-requests/{sent['request_id']}/resend", "pm"),
               201).json()
    assert env.get(SignoffRequest, uuid.UUID(sent["request_id"])).status == "revoked"
    assert env.get(SignoffRequest, uuid.UUID(again["request_id"])).status == "pending"


@case("POST /api/stages/{stage_id}/decision", "GET /api/stages/{stage_id}/signoff-certificate")
def _decision(env: Env) -> None:
    stage = _fresh_stage(env)
    decided = ok(env.api("POST", f"/api/stages/{stage}/decision", "admin",
                         json={"decision": "approve", "name": "Ada Admin"})).json()
    assert env.get(Stage, uuid.UUID(stage)).status == "signed_off"
    cert = ok(env.api("GET", f"/api/stages/{stage}/signoff-certificate", "member",
                      query={"request_id": decided["id"]}))
    assert "Ada Admin" in cert.text


@case("GET /api/stage-signers", "PUT /api/stage-signers/{user_id}", "DELETE /api/stage-signers/{user_id}")
def _signers(env: Env) -> None:
    uid = env.world.users["lead"]
    ok(env.api("PUT", f"/api/stage-signers/{uid}", "admin"))
    assert env.count(StageSigner, StageSigner.project_id == env.world.project_a, StageSigner.user_id == uid) == 1
    listed = ok(env.api("GET", "/api/stage-signers", "member")).json()["signers"]
    assert str(uid) in {s["user_id"] for s in listed}
    ok(env.api("DELETE", f"/api/stage-signers/{uid}", "admin"))
    assert env.count(StageSigner, StageSigner.project_id == env.world.project_a, StageSigner.user_id == uid) == 0


@case("GET /api/signoff-settings", "PUT /api/signoff-settings")
def _signoff_settings(env: Env) -> None:
    ok(env.api("PUT", "/api/signoff-settings", "pm", json={"reminder_days": 5, "require_code": True}))
    with env.db.service_session() as s:
        row = s.scalar(select(StageSettings).where(StageSettings.project_id == env.world.project_a))
        assert row is not None
        assert (row.reminder_days, row.require_code) == (5, True)
    assert ok(env.api("GET", "/api/signoff-settings", "member")).json()["reminder_days"] == 5
    assert "Sign-off settings" in ok(env.page("/p/{a}/stages", "pm")).text


@case("GET /signoff/{token}", "POST /signoff/{token}")
def _external_page(env: Env) -> None:
    sent = env.signoff(_fresh_stage(env))
    token = token_of(sent["token_link"])
    assert "Build" in ok(env.client.get(f"/signoff/{token}")).text
    ok(env.client.post(f"/signoff/{token}", data={"decision": "approve", "name": "Dana CFO", "note": ""}))
    assert env.get(SignoffRequest, uuid.UUID(sent["request_id"])).status == "approved"


@case("GET /api/signoff/{token}", "POST /api/signoff/{token}")
def _external_api(env: Env) -> None:
    sent = env.signoff(_fresh_stage(env))
    token = token_of(sent["token_link"])
    assert ok(env.client.get(f"/api/signoff/{token}")).json()["signoff"]["stage"]["title"] == "Build"
    ok(env.client.post(f"/api/signoff/{token}", json={"decision": "reject", "name": "Dana", "note": "Not yet"}))
    assert env.get(SignoffRequest, uuid.UUID(sent["request_id"])).status == "rejected"


@case("POST /api/signoff/{token}/code", "POST /signoff/{token}/code")
def _signer_code(env: Env) -> None:
    ok(env.api("PUT", "/api/signoff-settings", "pm", json={"require_code": True}))
    first, second = (token_of(env.signoff(_fresh_stage(env))["token_link"]) for _ in range(2))
    assert ok(env.client.post(f"/api/signoff/{first}/code")).json()["sent_to"]
    assert "We sent a 6-digit code" in ok(env.client.post(f"/signoff/{second}/code")).text
    assert env.count(EmailLog, EmailLog.kind == "signoff_code", EmailLog.project_id == env.world.project_a) == 2


@case("PUT /api/stages/{stage_id}/documents")
def _stage_documents(env: Env) -> None:
    stage, doc = _fresh_stage(env), env.upload()
    body = ok(env.api("PUT", f"/api/stages/{stage}/documents", "pm", json={"artifact_ids": [doc]})).json()
    assert [a["id"] for a in body["artifacts"]] == [doc]
    assert env.count(StageArtifact, StageArtifact.stage_id == uuid.UUID(stage)) == 1


@case("POST /api/stages/{stage_id}/archive")
def _archive_stage(env: Env) -> None:
    stage = _fresh_stage(env)
    ok(env.api("POST", f"/api/stages/{stage}/archive", "pm"))
    assert env.get(Stage, uuid.UUID(stage)).archived_at is not None
    listed = ok(env.api("GET", "/api/stages", "member")).json()["stages"]
    assert stage not in [s["id"] for s in listed]


@case("GET /signoff/{token}/documents/{artifact_id}", "GET /signoff/{token}/documents/{artifact_id}/preview.png")
def _signer_documents(env: Env) -> None:
    pdf = (Path(__file__).parent / "fixtures" / "northwind" / "SOW-2026-014 Northwind Workday.pdf").read_bytes()
    stage, doc = _fresh_stage(env), env.upload("SOW.pdf", pdf)
    ok(env.api("PUT", f"/api/stages/{stage}/documents", "pm", json={"artifact_ids": [doc]}))
    token = token_of(env.signoff(stage)["token_link"])
    assert ok(env.client.get(f"/signoff/{token}/documents/{doc}")).content == pdf
    image = ok(env.client.get(f"/signoff/{token}/documents/{doc}/preview.png?page=1"))
    assert image.headers["content-type"] == "image/png"
    assert image.content.startswith(b"\x89PNG")


# --- comms ----------------------------------------------------------------------------------------

@case("GET /api/comms/settings", "PUT /api/comms/settings")
def _comms_settings(env: Env) -> None:
    ok(env.api("PUT", "/api/comms/settings", "pm", json={"timezone": "Europe/Berlin", "daily_cap": 7}))
    with env.db.service_session() as s:
        row = s.scalar(select(CommsSettings).where(CommsSettings.project_id == env.world.project_a))
        assert row is not None
        assert row.timezone == "Europe/Berlin"
        assert row.daily_cap == 7
    assert ok(env.api("GET", "/api/comms/settings", "pm")).json()["settings"]["daily_cap"] == 7


@case("GET /api/subscriptions", "PUT /api/subscriptions")
def _subscriptions(env: Env) -> None:
    ok(env.api("PUT", "/api/subscriptions", "member", json={"mine": {"digest": False}}))
    assert env.count(Subscription, Subscription.user_id == env.world.users["member"],
                     Subscription.category == "digest", Subscription.subscribed.is_(False)) == 1
    assert ok(env.api("GET", "/api/subscriptions", "member")).json()["mine"]["digest"] is False


@case("GET /api/digest/preview")
def _preview(env: Env) -> None:
    body = ok(env.api("GET", "/api/digest/preview", "pm")).json()
    assert "a payroll secrets.pdf" in body["text"]


@case("POST /api/digest/send")
def _send_digest(env: Env) -> None:
    sent = ok(env.api("POST", "/api/digest/send", "pm", json={"to": "pm-inbox@example.com"})).json()
    log = env.get(EmailLog, uuid.UUID(sent["email_log_id"]))
    assert log.recipient == "pm-inbox@example.com"
    assert log.project_id == env.world.project_a


@case("GET /api/scheduler/status")
def _scheduler(env: Env) -> None:
    body = ok(env.api("GET", "/api/scheduler/status", "member")).json()
    assert "next_window" in str(body)


def _seeded_token(env: Env) -> str:
    with env.db.service_session() as s:
        token = s.scalar(select(Subscription.token).where(Subscription.project_id == env.world.project_a))
    assert token
    return str(token)


@case("GET /unsubscribe/{token}", "POST /unsubscribe/{token}")
def _unsubscribe(env: Env) -> None:
    token = _seeded_token(env)
    assert "digest" in ok(env.client.get(f"/unsubscribe/{token}")).text
    ok(env.client.post(f"/unsubscribe/{token}"))
    assert env.count(Subscription, Subscription.token == token, Subscription.subscribed.is_(False)) == 1


@case("POST /api/webhooks/mailgun")
def _webhook(env: Env) -> None:
    client = env.make_client(mailgun_webhook_signing_key=SIGNING_KEY)
    body = signed({"event": "delivered", "recipient": "x@example.com", "message": {"headers": {}}})
    ok(client.post("/api/webhooks/mailgun", json=body))
    assert env.count(WebhookToken, WebhookToken.token == body["signature"]["token"]) == 1


# --- backups ----------------------------------------------------------------------------------------

@case("POST /api/backups/run", "GET /api/backups")
def _backup_run(env: Env) -> None:
    key = env.backup()
    assert key in str(ok(env.api("GET", "/api/backups", "admin")).json())


@case("GET /api/backups/contents", "GET /api/backups/download")
def _backup_contents(env: Env) -> None:
    env.upload(name="Kept.txt", body=b"Kept bytes.")
    key = env.backup()
    entries = str(ok(env.api("GET", "/api/backups/contents", "admin", query={"backup_key": key})).json())
    assert "Kept.txt" in entries
    archive = ok(env.api("GET", "/api/backups/download", "admin", query={"backup_key": key})).content
    assert zipfile.ZipFile(io.BytesIO(archive)).namelist()


@case("POST /api/backups/store-and-reingest")
def _store_and_reingest(env: Env) -> None:
    env.upload(name="Kept.txt", body=b"Kept bytes.")
    key = env.backup()
    entries = ok(env.api("GET", "/api/backups/contents", "admin", query={"backup_key": key})).json()
    name = next(e for e in re.findall(r"artifacts/[^'\"]+", str(entries)) if e.endswith("Kept.txt"))
    ok(env.api("POST", "/api/backups/store-and-reingest", "owner", query={"backup_key": key, "artifact_name": name}))
    assert env.count(RestoreActivity, RestoreActivity.project_id == env.world.project_a,
                     RestoreActivity.kind == "reingest") == 1


@case("POST /api/backups/restore", "GET /api/restore-activity")
def _restore(env: Env) -> None:
    key = env.backup()
    body = ok(env.api("POST", "/api/backups/restore", "owner", query={"backup_key": key}, json={"target": "new"}),
              200).json()
    assert env.count(RestoreActivity, RestoreActivity.project_id == env.world.project_a,
                     RestoreActivity.kind == "restore") == 2  # the seeded one and this one
    activity = ok(env.api("GET", "/api/restore-activity", "admin")).json()["activity"]
    assert len(activity) == 2
    assert body["ok"] is True


# --- ask ------------------------------------------------------------------------------------------

@case("POST /api/ask", "GET /api/ask/log")
def _ask(env: Env) -> None:
    env.upload(body=b"The cutover weekend is 14 March.")
    answer = ok(env.api("POST", "/api/ask", "member", json={"question": "When is the cutover weekend?"})).json()
    assert "14 March" in str(answer)
    assert env.count(AskQuestion, AskQuestion.project_id == env.world.project_a) == 2
    log = ok(env.api("GET", "/api/ask/log", "owner")).json()["items"]
    assert log[0]["question"] == "When is the cutover weekend?"


# --- RAID -----------------------------------------------------------------------------------------

@case("GET /api/raid", "GET /api/raid/{item_id}", "GET /api/raid/export.csv")
def _raid_reads(env: Env) -> None:
    listed = ok(env.api("GET", "/api/raid", "member", query={"kind": "risk"})).json()["items"]
    assert [(i["ref"], i["title"]) for i in listed] == [("R-01", "a zzasecret vendor risk")]
    item = ok(env.api("GET", f"/api/raid/{env.ids['raid_items']}", "member")).json()
    assert item["item"]["owner"] == "a owner"
    assert item["comments"][0]["body"] == "a comment on zzasecret"
    csv_text = ok(env.api("GET", "/api/raid/export.csv", "member")).text
    assert "R-01,risk,a zzasecret vendor risk" in csv_text


@case("POST /api/raid", "PATCH /api/raid/{item_id}")
def _raid_write(env: Env) -> None:
    made = ok(env.api("POST", "/api/raid", "lead", json={"kind": "action", "title": "Send the plan"}), 201).json()
    ok(env.api("PATCH", f"/api/raid/{made['id']}", "lead", json={"owner": "Dana Whitfield"}))
    row = env.get(RaidItem, uuid.UUID(made["id"]))
    assert (row.title, row.owner, row.state) == ("Send the plan", "Dana Whitfield", "accepted")


@case("POST /api/raid/{item_id}/accept", "POST /api/raid/{item_id}/dismiss")
def _raid_review(env: Env) -> None:
    item = env.ids["raid_items"]
    ok(env.api("POST", f"/api/raid/{item}/dismiss", "lead"))
    assert env.get(RaidItem, item).state == "dismissed"
    ok(env.api("POST", f"/api/raid/{item}/accept", "lead", json={"severity": "critical"}))
    row = env.get(RaidItem, item)
    assert (row.state, row.severity) == ("accepted", "critical")


@case("GET /api/raid/{item_id}/comments", "POST /api/raid/{item_id}/comments")
def _raid_comments(env: Env) -> None:
    item = env.ids["raid_items"]
    ok(env.api("POST", f"/api/raid/{item}/comments", "member", json={"body": "Vendor called back."}), 201)
    bodies = [c["body"] for c in ok(env.api("GET", f"/api/raid/{item}/comments", "member")).json()["comments"]]
    assert bodies == ["a comment on zzasecret", "Vendor called back."]
    assert env.count(RaidComment, RaidComment.item_id == item) == 2


@case("GET /p/{project_id}/raid", "GET /raid", "GET /p/{project_id}/raid/review", "GET /raid/review",
      "GET /p/{project_id}/raid/items/{item_id}")
def _raid_pages(env: Env) -> None:
    for path in ("/p/{a}/raid", "/raid"):
        _shows(env, path, "a zzasecret vendor risk", who="member")
    ok(env.api("POST", "/api/raid/" + str(env.ids["raid_items"]) + "/dismiss", "lead"))
    for path in ("/p/{a}/raid/review", "/raid/review"):
        _shows(env, path, "Nothing waiting for review.", who="member")
    _shows(env, f"/p/{{a}}/raid/items/{env.ids['raid_items']}", "Risk R-01: a zzasecret vendor risk",
           "a comment on zzasecret", who="member")


# --- pages ----------------------------------------------------------------------------------------

def _shows(env: Env, path: str, *texts: str, who: str = "owner") -> None:
    page = ok(env.page(path, who))
    for text in texts:
        assert text in page.text, (path, text)


@case("GET /")
def _home(env: Env) -> None:
    _shows(env, "/", "A")


@case("GET /projects/{project_id}", "GET /projects/{project_id}/open", "GET /p/{project_id}",
      "GET /p/{project_id}/dashboard", "GET /dashboard")
def _dashboard(env: Env) -> None:
    for path in ("/projects/{a}", "/projects/{a}/open", "/p/{a}", "/p/{a}/dashboard", "/dashboard"):
        _shows(env, path, "a payroll secrets.pdf")


@case("GET /p/{project_id}/settings", "GET /settings")
def _settings_page(env: Env) -> None:
    for path in ("/p/{a}/settings", "/settings"):
        _shows(env, path, 'id="comms-settings"')


@case("GET /p/{project_id}/admin", "GET /admin")
def _admin_page(env: Env) -> None:
    for path in ("/p/{a}/admin", "/admin"):
        _shows(env, path, "stage.status_changed")


@case("GET /p/{project_id}/documents", "GET /documents", "GET /p/{project_id}/documents/{artifact_id}",
      "GET /documents/{artifact_id}")
def _documents_pages(env: Env) -> None:
    doc = env.upload()
    for path in ("/p/{a}/documents", "/documents"):
        _shows(env, path, "Cutover plan.txt")
    for path in (f"/p/{{a}}/documents/{doc}", f"/documents/{doc}"):
        _shows(env, path, "Cutover weekend is 14 March.")


@case("GET /p/{project_id}/documents/{artifact_id}/pages/{page}.png")
def _page_image(env: Env) -> None:
    pdf = (FIXTURES / "northwind" / "SOW-2026-014 Northwind Workday.pdf").read_bytes()
    doc = env.upload("SOW.pdf", pdf)
    image = ok(env.page(f"/p/{{a}}/documents/{doc}/pages/1.png"))
    assert image.headers["content-type"] == "image/png"
    assert image.content[:4] == b"\x89PNG"


@case("GET /p/{project_id}/ocr", "GET /ocr")
def _ocr_pages(env: Env) -> None:
    for path in ("/p/{a}/ocr", "/ocr"):
        _shows(env, path, "a scanned contract.pdf")


@case("GET /p/{project_id}/ask", "GET /ask")
def _ask_pages(env: Env) -> None:
    for path in ("/p/{a}/ask", "/ask"):
        _shows(env, path, "Ask")


@case("GET /p/{project_id}/stages", "GET /stages")
def _stages_pages(env: Env) -> None:
    for path in ("/p/{a}/stages", "/stages"):
        _shows(env, path, "a Discovery")


@case("GET /p/{project_id}/digest", "GET /p/{project_id}/digest/mail")
def _digest_pages(env: Env) -> None:
    for path in ("/p/{a}/digest", "/p/{a}/digest/mail"):
        _shows(env, path, "a payroll secrets.pdf", who="pm")


@case("GET /p/{project_id}/backups", "GET /backups")
def _backups_pages(env: Env) -> None:
    for path in ("/p/{a}/backups", "/backups"):
        _shows(env, path, "Backups", who="admin")


# --- the guard ------------------------------------------------------------------------------------

def test_every_route_has_a_case() -> None:
    routes = {r.id for r in ROUTES}
    assert routes - set(CASES) == set(), "add a case (valid request, 2xx, effect) for these routes"
    assert set(CASES) - routes == set(), "these cases name routes that no longer exist"


@pytest.fixture
def env(app: Any, client: TestClient, world: World, db: Database, factory: Factory,
        make_client: Callable[..., TestClient]) -> Env:
    ids = seed_every_table(db, world.org1, world.project_a, world.users["owner"], "a")
    return Env(app=app, client=client, world=world, db=db, factory=factory, make_client=make_client, ids=ids)


@pytest.mark.parametrize("name", sorted({fn.__name__ for fn in CASES.values()}))
def test_route_case(env: Env, name: str) -> None:
    fn = next(f for f in CASES.values() if f.__name__ == name)
    fn(env)


# --- an archived project is read-only -------------------------------------------------------------
# Generated from the route table: a write route added later is expected to refuse an archived
# project, and a read route to keep answering.

WRITES = [r for r in ROUTES if r.action and changes_project(r.method, r.action)]
READS = [r for r in ROUTES if r.action and not changes_project(r.method, r.action)]


def _archived(db: Database, project: uuid.UUID) -> None:
    with db.service_transaction() as s:
        row = s.get(Project, project)
        assert row is not None
        row.archived_at = utcnow()


def test_the_route_table_has_writes_and_reads() -> None:
    assert len(WRITES) > 30
    assert {r.id for r in READS if r.method != "GET"} == {
        "POST /api/ask", "DELETE /api/projects/{project_id}", "POST /api/projects/{project_id}/unarchive"}


@pytest.mark.parametrize("route", WRITES, ids=lambda r: r.id)
def test_every_write_route_refuses_an_archived_project(client: TestClient, world: World, db: Database,
                                                       route: RouteCase) -> None:
    assert route.action
    _archived(db, world.project_a)
    response = _call(client, route, world.h(ACTIONS[route.action]), world.project_a, world.project_b)
    assert response.status_code == 409, response.text
    assert response.json()["error"]["code"] == "project_archived"


@pytest.mark.parametrize("route", READS, ids=lambda r: r.id)
def test_every_read_route_still_answers_on_an_archived_project(client: TestClient, world: World, db: Database,
                                                               route: RouteCase) -> None:
    assert route.action
    _archived(db, world.project_a)
    response = _call(client, route, world.h(ACTIONS[route.action]), world.project_a, world.project_b)
    assert response.status_code < 500, response.text
    assert response.status_code not in (401, 403, 409), response.text
