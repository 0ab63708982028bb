"""The QA seeder and the smoke runner: prove a deployment works end to end."""

from __future__ import annotations

import io
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import DBAPIError

from kap.comms import service as comms
from kap.core.deps import ProjectContext
from kap.core.errors import Conflict, KapError, ValidationFailed
from kap.core.models import ProjectMember, User
from kap.core.runtime import Runtime
from kap.documents import service as documents
from kap.documents.models import Artifact
from kap.qa.samples import samples
from kap.stages import service as stages
from kap.stages import signoff
from kap.stages.models import SignoffRequest

SAMPLE_MEMBERS = (("qa.lead@example.com", "QA Lead", "lead"), ("qa.member@example.com", "QA Member", "member"))
SMOKE_STAGE = "Discovery"
FALLBACK_STAGE = "Smoke check"


def seed_simple(ctx: ProjectContext, runtime: Runtime) -> dict[str, Any]:
    """Add sample documents, the stage plan and two members; running it again adds nothing."""
    for sample in samples():
        if _has_document(ctx, sample.name):
            continue
        try:
            documents.upload(ctx, runtime, io.BytesIO(sample.data), sample.name, wait=True)
        except Conflict:
            pass  # the same bytes are already in the project under another name
    stage_plan = stages.apply_template(ctx)
    members = [_ensure_member(ctx, runtime, email, name, role) for email, name, role in SAMPLE_MEMBERS]
    return {"ok": True, "documents": _count(ctx), "stages": len(stage_plan), "members": len(members),
            "needs_ocr": _count(ctx, status="needs_ocr")}


def _has_document(ctx: ProjectContext, name: str) -> bool:
    found = ctx.session.scalar(select(Artifact.id).where(
        Artifact.project_id == ctx.project_id, Artifact.name == name, Artifact.parent_id.is_(None)).limit(1))
    return found is not None


def _count(ctx: ProjectContext, status: str | None = None) -> int:
    stmt = select(func.count()).select_from(Artifact).where(Artifact.project_id == ctx.project_id,
                                                           Artifact.parent_id.is_(None))
    if status:
        stmt = stmt.where(Artifact.status == status)
    return ctx.session.scalar(stmt) or 0


def _ensure_member(ctx: ProjectContext, runtime: Runtime, email: str, name: str, role: str) -> str:
    with runtime.db.service_scope(ctx.session) as svc:
        user = svc.scalar(select(User).where(User.email == email))
        if user is None:
            user = User(email=email, name=name)
            svc.add(user)
            svc.flush()
        user_id = user.id
    exists = ctx.session.scalar(select(ProjectMember.id).where(ProjectMember.project_id == ctx.project_id,
                                                               ProjectMember.user_id == user_id))
    if exists is None:
        from kap.projects.service import add_member

        add_member(ctx, User(id=user_id, email=email, name=name), role, invited=False)
    return email


@dataclass
class Step:
    name: str
    ok: bool
    ms: float
    detail: str | None = None
    hint: str | None = None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "ok": self.ok, "ms": round(self.ms, 1)}
        if self.detail:
            out["detail"] = self.detail
        if self.hint:
            out["hint"] = self.hint
        return out


@dataclass
class SmokeRun:
    steps: list[Step] = field(default_factory=list)
    values: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return all(step.ok for step in self.steps)

    def run(self, name: str, ctx: ProjectContext, action: Callable[[], str | None]) -> bool:
        """Run one step in a savepoint; record its time, and a hint when it fails."""
        start = time.perf_counter()
        try:
            with ctx.session.begin_nested():
                detail = action()
        except (KapError, DBAPIError, OSError) as exc:
            self.steps.append(Step(name, False, (time.perf_counter() - start) * 1000, _message(exc), _hint(exc)))
            return False
        self.steps.append(Step(name, True, (time.perf_counter() - start) * 1000, detail))
        return True

    def as_dict(self) -> dict[str, Any]:
        failed = next((s.name for s in self.steps if not s.ok), None)
        body = {"ok": self.ok, **self.values, "steps": [s.as_dict() for s in self.steps]}
        if failed:
            body["failed_step"] = failed
        return body


def _message(exc: BaseException) -> str:
    return exc.message if isinstance(exc, KapError) else type(exc).__name__


def _hint(exc: BaseException) -> str:
    if isinstance(exc, DBAPIError):
        return "database not ready: check /readyz and run `kap migrate`"
    if isinstance(exc, OSError):
        return "storage not writable: check KAP_DATA_DIR or the S3 settings"
    if isinstance(exc, KapError) and exc.code in ("mail_failed",):
        return "mailer misconfigured: check KAP_SMTP_URL or MAILGUN_DOMAIN / MAILGUN_API_KEY"
    if isinstance(exc, KapError) and exc.code == "already_signed_off":
        return "the stage is signed off already; the smoke runner uses a separate stage next time"
    return "see detail"


def smoke_run(ctx: ProjectContext, runtime: Runtime, email_to: str | None) -> dict[str, Any]:
    """Ensure the Discovery stage, request its external sign-off, and build the digest preview."""
    to = email_to or runtime.settings.digest_test_email
    if not to:
        raise ValidationFailed("give email_to, or set DIGEST_TEST_EMAIL", details={"field": "email_to"})
    run = SmokeRun()
    stage_ids: list[Any] = []
    if not run.run("stage", ctx, lambda: _smoke_stage(ctx, stage_ids)):
        return run.as_dict()
    run.values["stage_id"] = str(stage_ids[0])
    if not run.run("signoff", ctx, lambda: _smoke_signoff(ctx, runtime, stage_ids[0], to, run.values)):
        return run.as_dict()
    run.run("digest_preview", ctx, lambda: _smoke_digest(ctx, runtime, run.values))
    return run.as_dict()


def _smoke_stage(ctx: ProjectContext, out: list[Any]) -> str:
    stage = stages.ensure_stage(ctx, SMOKE_STAGE)
    if stage.status == "signed_off":
        stage = stages.ensure_stage(ctx, FALLBACK_STAGE)
    out.append(stage.id)
    return f"{stage.title} ({stage.status})"


def _smoke_signoff(ctx: ProjectContext, runtime: Runtime, stage_id: Any, to: str, values: dict[str, Any]) -> str:
    for open_id in ctx.session.scalars(select(SignoffRequest.id).where(
            SignoffRequest.stage_id == stage_id, SignoffRequest.status == "pending")).all():
        signoff.revoke_request(ctx, stage_id, open_id)
    issued = signoff.request_signoff(ctx, stage_id, to, message="Kap smoke check: please ignore.",
                                     mailer=runtime.mailer, settings=runtime.settings)
    values["signoff_request_id"] = str(issued.request.id)
    values["token_link"] = issued.token_link
    values["email"] = issued.email
    return f"link mailed to {to} ({issued.email.get('status', 'unknown')})"


def _smoke_digest(ctx: ProjectContext, runtime: Runtime, values: dict[str, Any]) -> str:
    digest = comms.preview(ctx, base_url=runtime.settings.public_url)
    values["digest_preview"] = {"counts": digest.counts, "subject": digest.subject,
                                "sections": [s.key for s in digest.sections]}
    return f"{len(digest.sections)} sections"

